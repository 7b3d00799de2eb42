#!/usr/bin/env python3
"""ONNX Runtime's latency on a model, measured as `kiln bench` measures kiln's.

Inputs are generated the way `kiln bench` generates them: floats standard normal, integer
inputs that are a Gather's indices into a constant table uniform inside the table, other
integers 1 (masks), bools true. Symbolic dims take --dim values, else 128 for dims whose name
contains `seq` or `len` and 1 otherwise. Prints `median X ms (min Y, max Z, N runs)`.

    python bench/ort_bench.py model.onnx --threads 2 --dim batch=1 --dim seq=128
"""

import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort

ONNX_INT = {
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT64: np.uint64,
}
ONNX_FLOAT = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
}


def index_ranges(model):
    """Input name -> size of the constant table the input indexes (through Gather)."""
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = list(a.t.dims)
    ranges = {}
    for n in model.graph.node:
        if n.op_type in ("Gather", "GatherElements") and len(n.input) > 1:
            dims = inits.get(n.input[0])
            if dims is None:
                continue
            axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
            size = dims[axis]
            ranges[n.input[1]] = min(size, ranges.get(n.input[1], size))
    return ranges


def dim_size(d, dims):
    if d.HasField("dim_value"):
        return d.dim_value
    name = d.dim_param
    if name in dims:
        return dims[name]
    return 128 if ("seq" in name.lower() or "len" in name.lower()) else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dim", action="append", default=[], metavar="NAME=N")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    dims = {}
    for spec in a.dim:
        name, _, v = spec.partition("=")
        dims[name] = int(v)

    model = onnx.load(a.model, load_external_data=False)
    ranges = index_ranges(model)
    init_names = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(a.seed)
    feeds = {}
    for i in model.graph.input:
        if i.name in init_names:
            continue
        t = i.type.tensor_type
        shape = [dim_size(d, dims) for d in t.shape.dim]
        if t.elem_type in ONNX_FLOAT:
            feeds[i.name] = rng.standard_normal(shape).astype(ONNX_FLOAT[t.elem_type])
            how = "random normal"
        elif t.elem_type in ONNX_INT and i.name in ranges:
            feeds[i.name] = rng.integers(0, ranges[i.name], shape).astype(ONNX_INT[t.elem_type])
            how = f"random indices in 0..{ranges[i.name]}"
        elif t.elem_type in ONNX_INT:
            feeds[i.name] = np.ones(shape, ONNX_INT[t.elem_type])
            how = "all 1 (not an index)"
        elif t.elem_type == onnx.TensorProto.BOOL:
            feeds[i.name] = np.ones(shape, bool)
            how = "all true"
        else:
            raise SystemExit(f"input {i.name}: cannot generate elem type {t.elem_type}")
        print(f"ort: input {i.name} {feeds[i.name].dtype}{list(shape)}: {how}", flush=True)

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    start = time.perf_counter()
    s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    print(f"ort: onnxruntime {ort.__version__}, session created in "
          f"{(time.perf_counter() - start) * 1e3:.0f} ms, {a.threads} threads; "
          f"{a.warmup} warm-up runs, {a.runs} timed runs", flush=True)
    for _ in range(a.warmup):
        s.run(None, feeds)
    ts = []
    for _ in range(a.runs):
        t = time.perf_counter()
        s.run(None, feeds)
        ts.append(time.perf_counter() - t)
    ts = np.array(ts) * 1e3

    def ms(m):
        return f"{m:.0f}" if m >= 100 else f"{m:.1f}" if m >= 10 else f"{m:.2f}" if m >= 1 else f"{m:.3f}"

    print(f"median {ms(np.median(ts))} ms (min {ms(ts.min())}, max {ms(ts.max())}, {len(ts)} runs)")


if __name__ == "__main__":
    main()
