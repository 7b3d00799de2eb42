"""Writes examples/tiny_block: one pre-norm transformer block (RMSNorm, causal multi-head
attention, SwiGLU MLP) with a tied LM head, as plain ONNX ops, plus a reference input and
ONNX Runtime's outputs for it.

Run with the tools venv (../shared/tools/README.md): python examples/tiny_block/make.py
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

VOCAB, HIDDEN, HEADS, FFN, SEQ = 64, 32, 2, 64, 7
HEAD_DIM = HIDDEN // HEADS
rng = np.random.default_rng(7)
here = os.path.dirname(os.path.abspath(__file__))


def w(name, *shape, scale=0.2):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


inits = [
    w("embed", VOCAB, HIDDEN, scale=1.0),
    numpy_helper.from_array((1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32), "ln1"),
    numpy_helper.from_array((1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32), "ln2"),
    w("wq", HIDDEN, HIDDEN), w("wk", HIDDEN, HIDDEN), w("wv", HIDDEN, HIDDEN), w("wo", HIDDEN, HIDDEN),
    w("w_gate", HIDDEN, FFN), w("w_up", HIDDEN, FFN), w("w_down", FFN, HIDDEN),
    numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    numpy_helper.from_array(np.array(1.0 / np.sqrt(HEAD_DIM), np.float32), "scale"),
    numpy_helper.from_array(np.array(-1e9, np.float32), "neg_big"),
    numpy_helper.from_array(np.array([0, 0, HEADS, HEAD_DIM], np.int64), "heads_shape"),
    numpy_helper.from_array(np.array([0, 0, HIDDEN], np.int64), "hidden_shape"),
    numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
]

nodes = [helper.make_node("Gather", ["embed", "ids"], ["x0"], axis=0)]


def rms_norm(x, weight, out):
    return [
        helper.make_node("Pow", [x, "two"], [out + "_sq"]),
        helper.make_node("ReduceMean", [out + "_sq", "last_axis"], [out + "_ms"], keepdims=1),
        helper.make_node("Add", [out + "_ms", "eps"], [out + "_mse"]),
        helper.make_node("Sqrt", [out + "_mse"], [out + "_rms"]),
        helper.make_node("Div", [x, out + "_rms"], [out + "_n"]),
        helper.make_node("Mul", [out + "_n", weight], [out]),
    ]


nodes += rms_norm("x0", "ln1", "h1")
for p in "qkv":
    nodes += [
        helper.make_node("MatMul", ["h1", "w" + p], [p + "_flat"]),
        helper.make_node("Reshape", [p + "_flat", "heads_shape"], [p + "_4d"]),
        helper.make_node("Transpose", [p + "_4d"], [p], perm=[0, 2, 1, 3]),
    ]
nodes += [
    helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
    helper.make_node("MatMul", ["q", "kt"], ["scores_raw"]),
    helper.make_node("Mul", ["scores_raw", "scale"], ["scores"]),
    # Causal mask from the sequence length: ones(seq, seq) -> upper triangle above the diagonal.
    helper.make_node("Shape", ["ids"], ["ids_shape"]),
    helper.make_node("Slice", ["ids_shape", "one_i", "two_i"], ["seq_len"]),
    helper.make_node("Concat", ["seq_len", "seq_len"], ["mask_shape"], axis=0),
    helper.make_node("ConstantOfShape", ["mask_shape"], ["ones"],
                     value=numpy_helper.from_array(np.array([1.0], np.float32))),
    helper.make_node("Trilu", ["ones", "one_i_scalar"], ["upper"], upper=1),
    helper.make_node("Mul", ["upper", "neg_big"], ["mask"]),
    helper.make_node("Add", ["scores", "mask"], ["scores_masked"]),
    helper.make_node("Softmax", ["scores_masked"], ["probs"], axis=-1),
    helper.make_node("MatMul", ["probs", "v"], ["ctx_4d"]),
    helper.make_node("Transpose", ["ctx_4d"], ["ctx_t"], perm=[0, 2, 1, 3]),
    helper.make_node("Reshape", ["ctx_t", "hidden_shape"], ["ctx"]),
    helper.make_node("MatMul", ["ctx", "wo"], ["attn_out"]),
    helper.make_node("Add", ["x0", "attn_out"], ["x1"]),
]
inits += [
    numpy_helper.from_array(np.array([1], np.int64), "one_i"),
    numpy_helper.from_array(np.array([2], np.int64), "two_i"),
    numpy_helper.from_array(np.array(1, np.int64), "one_i_scalar"),
]
nodes += rms_norm("x1", "ln2", "h2")
nodes += [
    helper.make_node("MatMul", ["h2", "w_gate"], ["gate"]),
    helper.make_node("Sigmoid", ["gate"], ["gate_sig"]),
    helper.make_node("Mul", ["gate", "gate_sig"], ["gate_act"]),
    helper.make_node("MatMul", ["h2", "w_up"], ["up"]),
    helper.make_node("Mul", ["gate_act", "up"], ["ffn_in"]),
    helper.make_node("MatMul", ["ffn_in", "w_down"], ["ffn_out"]),
    helper.make_node("Add", ["x1", "ffn_out"], ["x2"]),
    helper.make_node("Transpose", ["embed"], ["embed_t"], perm=[1, 0]),
    helper.make_node("MatMul", ["x2", "embed_t"], ["logits"]),
]

graph = helper.make_graph(
    nodes,
    "tiny_block",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "seq"])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "seq", VOCAB])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="kiln-examples", ir_version=10)
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "model.onnx"))

ids = rng.integers(0, VOCAB, size=(1, SEQ)).astype(np.int64)
os.makedirs(os.path.join(here, "inputs"), exist_ok=True)
os.makedirs(os.path.join(here, "outputs"), exist_ok=True)
np.save(os.path.join(here, "inputs", "ids.npy"), ids)
(logits,) = ort.InferenceSession(os.path.join(here, "model.onnx")).run(None, {"ids": ids})
np.save(os.path.join(here, "outputs", "logits.npy"), logits)
print("wrote", here, "logits", logits.shape)
