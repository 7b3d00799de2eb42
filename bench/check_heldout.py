#!/usr/bin/env python3
"""kiln's fusion and outputs on model cases it was not written against (bench/export_heldout.py).

    python bench/check_heldout.py DIR [NAME ...] [--kiln PATH] [--json FILE]

(default: every case of DIR whose info.json has `expected_fusion`)

For each case DIR/NAME (the layout of ../shared/models), runs
  kiln opt model.onnx --fusion-report r.json -o fused.kir   the regions and the op histogram
  kiln run fused.kir                                         the fused graph on the interpreter
  kiln compile model.onnx --dim D=N ...; kiln run m.kiln     the compiled model on this CPU
and prints one row per case: the attention and moe regions expected (info.json's
`expected_fusion`, one per layer / sparse layer) and found in the final graph, the Softmax
and TopK left anywhere in it, and each run's max abs error against the reference outputs
(ok when within info.json's atol + rtol * |reference|). Exits 1 if a row is not ok.
Needs numpy and onnx (the tools' Python environment); kiln defaults to target/release/kiln.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kiln_cmd(kiln, *args):
    r = subprocess.run([kiln, *args], capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        raise RuntimeError(msg[-1].removeprefix("error: ") if msg else f"kiln {args[0]} failed")
    return r.stdout


def symbol_sizes(model_path, inputs):
    """Each symbolic dim of the graph's inputs, sized by the reference input arrays."""
    m = onnx.load(model_path, load_external_data=False)
    sizes = {}
    for i in m.graph.input:
        if i.name not in inputs:
            continue
        for d, n in zip(i.type.tensor_type.shape.dim, inputs[i.name].shape):
            if d.dim_param:
                sizes.setdefault(d.dim_param, n)
    return sizes


def errors(out_dir, case, info):
    """(max abs error, within tolerance) over the case's reference outputs."""
    worst, ok = 0.0, True
    for f in sorted(os.listdir(os.path.join(case, "outputs"))):
        want = np.load(os.path.join(case, "outputs", f))
        got_path = os.path.join(out_dir, f)
        if not os.path.exists(got_path):
            raise RuntimeError(f"output {f[:-4]} not produced")
        got = np.load(got_path)
        if got.shape != want.shape:
            raise RuntimeError(f"output {f[:-4]}: shape {got.shape}, reference {want.shape}")
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        bound = info.get("atol", 1e-4) + info.get("rtol", 1e-4) * np.abs(want.astype(np.float64))
        ok = ok and bool((diff <= bound).all())
    return worst, ok


def check(kiln, case):
    info = json.load(open(os.path.join(case, "info.json")))
    expected = info.get("expected_fusion", {})
    model = os.path.join(case, "model.onnx")
    inputs = {f[:-4]: np.load(os.path.join(case, "inputs", f)) for f in os.listdir(os.path.join(case, "inputs"))}
    feeds = [a for n in sorted(inputs) for a in ("--input", f"{n}={os.path.join(case, 'inputs', n + '.npy')}")]
    row = {"name": os.path.basename(case), "exporter": info.get("exporter", "?"), "expected": expected}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kiln_cmd(kiln, "opt", model, "--fusion-report", f"{tmp}/r.json", "-o", f"{tmp}/fused.kir")
        except RuntimeError as e:
            row["error"] = f"opt: {e}"
            return row
        report = json.load(open(f"{tmp}/r.json"))
        ops = report["ops"]
        row["found"] = {k: ops.get(k, 0) for k in ("attention", "moe")}
        row["left"] = {k: ops.get(k, 0) for k in ("Softmax", "TopK")}
        row["forms"] = sorted({f"{rule}:{r['form']}" for rule, rr in report["rules"].items()
                               for r in rr["regions"] if rule in ("fuse-attention", "fuse-moe")})
        dims = [a for k, v in symbol_sizes(model, inputs).items() for a in ("--dim", f"{k}={v}")]
        runs = {
            "interp": [["run", f"{tmp}/fused.kir", *feeds, "-o", f"{tmp}/interp"]],
            "cpu": [["compile", model, "-o", f"{tmp}/m.kiln", *dims],
                    ["run", f"{tmp}/m.kiln", *feeds, "-o", f"{tmp}/cpu"]],
        }
        for what, commands in runs.items():
            os.makedirs(os.path.join(tmp, what))
            try:
                for c in commands:
                    kiln_cmd(kiln, *c)
                row[what] = errors(os.path.join(tmp, what), case, info)
            except RuntimeError as e:
                row[what] = str(e)
    return row


def info_of(case):
    path = os.path.join(case, "info.json")
    return json.load(open(path)) if os.path.exists(path) else {}


def cell(v):
    if isinstance(v, tuple):
        return f"{v[0]:.1e}" + ("" if v[1] else " (over tol)")
    return f"error: {v}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("names", nargs="*")
    p.add_argument("--kiln", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                  "release", "kiln"))
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()
    names = a.names or sorted(n for n in os.listdir(a.dir) if "expected_fusion" in info_of(os.path.join(a.dir, n)))
    print("| model | exporter | expected attn/moe | found attn/moe | Softmax/TopK left | forms | "
          "max err, fused IR on interpreter | max err, compiled (CPU) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows, bad = [], False
    for n in names:
        r = check(a.kiln, os.path.join(a.dir, n))
        rows.append(r)
        if "error" in r:
            print(f"| {n} | {r['exporter']} | | | | | {r['error']} | |", flush=True)
            bad = True
            continue
        e, f, left = r["expected"], r["found"], r["left"]
        good = (e.get("attention") == f["attention"] and e.get("moe") == f["moe"]
                and all(isinstance(r[w], tuple) and r[w][1] for w in ("interp", "cpu")))
        bad = bad or not good
        print(f"| {n} | {r['exporter']} | {e.get('attention', '?')}/{e.get('moe', '?')} | "
              f"{f['attention']}/{f['moe']} | {left['Softmax']}/{left['TopK']} | {', '.join(r['forms']) or '-'} | "
              f"{cell(r['interp'])} | {cell(r['cpu'])} |", flush=True)
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
