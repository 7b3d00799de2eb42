#!/usr/bin/env python3
"""Held-out models for the fusion rules: configs and exporters the project's cases never use.

    python bench/export_heldout.py OUT_DIR [NAME ...]     (default: every model below)
    python bench/export_heldout.py --list

Each model becomes a case OUT_DIR/NAME in the layout of ../shared/models (model.onnx,
inputs/, outputs/, info.json), made by ../shared/tools (export_hf.main, make_case.make and
the onnxruntime-genai builder), so `bench/check_heldout.py OUT_DIR` can check kiln's fusion
and outputs on them. info.json also records `expected_fusion`: the attention and moe regions
a complete fusion should find (one attention per layer, one moe per sparse layer).

| name                        | exporter          | what differs from the shared cases          |
| --------------------------- | ----------------- | ------------------------------------------- |
| mixtral_e8k2_gqa4           | dynamo            | 8 experts top-2, 8 q heads : 2 kv (GQA 4:1), 3 layers, hidden 128 |
| qwen3_moe_e16k4             | dynamo            | 16 experts top-4, renormalised top-k, GQA 2:1, layer 1 dense (3 attn, 2 moe) |
| deepseek_v3_g4              | dynamo            | 16 routed experts top-4 in 4 groups (top 2 groups), 2 shared experts, 8 heads, 3 layers |
| llama_mqa                   | dynamo            | MQA (8 q heads : 1 kv), head_dim 16, 3 layers |
| olmoe                       | dynamo            | family not in the shared cases: softmax top-2 of 8 without renormalisation, q/k norm |
| qwen2_moe                   | dynamo            | family not in the shared cases: sigmoid-gated shared expert beside top-2 of 8 |
| *_trace (same configs)      | TorchScript       | torch.onnx.export(dynamo=False), where it exports |
| genai_qwen3.prefill/.decode | onnxruntime-genai | GenAI builder on a dense Qwen3 (q/k norm), KV cache |

The TorchScript exporter cannot export transformers' packed-sequence detection (aten::diff
in masking_utils.find_packed_sequence_indices); for one unpacked sequence that function
returns None in eager mode, so the trace exports use exactly that. Nor can it export
scaled_dot_product_attention with GQA (enable_gqa): GQA/MQA models are traced with
transformers' eager attention (repeat_kv, MatMul, Softmax), MHA ones with sdpa.

Needs the tools' Python environment (torch, transformers, onnxruntime, onnxruntime-genai):
`. ~/.venvs/kiln-tools/bin/activate`. KILN_SHARED_TOOLS overrides ../shared/tools.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.environ.get("KILN_SHARED_TOOLS", os.path.join(ROOT, "..", "shared", "tools"))
sys.path.insert(0, TOOLS)
sys.dont_write_bytecode = True

SEQ = 16

# name -> (export_hf config, layers with attention, layers with moe)
CONFIGS = {
    "mixtral_e8k2_gqa4": (
        dict(model_type="mixtral", hidden_size=128, intermediate_size=96, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=2, num_local_experts=8,
             num_experts_per_tok=2, vocab_size=256, max_position_embeddings=256),
        3, 3),
    "qwen3_moe_e16k4": (
        dict(model_type="qwen3_moe", hidden_size=96, intermediate_size=128, moe_intermediate_size=24,
             num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=3, head_dim=16,
             num_experts=16, num_experts_per_tok=4, norm_topk_prob=True, decoder_sparse_step=1,
             mlp_only_layers=[1], vocab_size=256, max_position_embeddings=256),
        3, 2),
    "deepseek_v3_g4": (
        dict(model_type="deepseek_v3", hidden_size=96, intermediate_size=128, moe_intermediate_size=24,
             num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=8,
             num_key_value_heads=8, n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4,
             n_group=4, topk_group=2, q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
             qk_rope_head_dim=8, v_head_dim=12, vocab_size=256, max_position_embeddings=256,
             routed_scaling_factor=1.5, norm_topk_prob=True),
        3, 2),
    "llama_mqa": (
        dict(model_type="llama", hidden_size=128, intermediate_size=192, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=1, head_dim=16, vocab_size=256,
             max_position_embeddings=256),
        3, 0),
    "olmoe": (
        dict(model_type="olmoe", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=4, num_experts=8, num_experts_per_tok=2,
             norm_topk_prob=False, vocab_size=256, max_position_embeddings=256),
        2, 2),
    "qwen2_moe": (
        dict(model_type="qwen2_moe", hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
             shared_expert_intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, num_experts=8, num_experts_per_tok=2, vocab_size=256,
             max_position_embeddings=256),
        2, 2),
}
TRACE = ["llama_mqa", "mixtral_e8k2_gqa4", "qwen3_moe_e16k4", "deepseek_v3_g4"]
GENAI = {
    "qwen3": (
        dict(model_type="qwen3", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=256,
             max_position_embeddings=256, bos_token_id=0, eos_token_id=1),
        2, 0),
}


def all_names():
    names = list(CONFIGS) + [f"{n}_trace" for n in TRACE]
    for n in GENAI:
        names += [f"genai_{n}.prefill", f"genai_{n}.decode"]
    return names


def expected(attention, moe):
    return {"expected_fusion": {"attention": attention, "moe": moe}}


@contextlib.contextmanager
def no_packed_sequences():
    """The TorchScript exporter lacks aten::diff, used only to detect packed sequences."""
    import transformers.masking_utils as mu

    found = mu.find_packed_sequence_indices
    mu.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        mu.find_packed_sequence_indices = found


def export_hf_case(out_dir, name, base, dynamo):
    import export_hf
    from make_case import make

    cfg, attention, moe = CONFIGS[base]
    if not dynamo and cfg["num_key_value_heads"] != cfg["num_attention_heads"]:
        cfg = dict(cfg, attn_implementation="eager")
    export_hf.CFGS[base] = cfg
    with tempfile.TemporaryDirectory() as raw:
        with contextlib.nullcontext() if dynamo else no_packed_sequences():
            export_hf.main(base, raw, seq=SEQ, dynamo=dynamo, experts="batched_mm")
        tag = f"{base}.batched_mm.{'dynamo' if dynamo else 'trace'}"
        feeds = {"input_ids": np.load(os.path.join(raw, f"{tag}.input_ids.npy"))}
        ref = {"logits": np.load(os.path.join(raw, f"{tag}.logits.npy"))}
        exporter = "dynamo" if dynamo else "TorchScript (dynamo=False)"
        source = (f"held-out: HF transformers 5.23 {cfg['model_type']} tiny random config {base} "
                  f"(kiln bench/export_heldout.py), experts=batched_mm, exported with torch 2.15 {exporter}")
        make(os.path.join(out_dir, name), os.path.join(raw, f"{tag}.onnx"), feeds, source, ref, 1e-4,
             dict(expected(attention, moe), exporter=exporter, config=cfg))


def word_level_tokenizer(vocab_size, where):
    """A tokenizer.json the GenAI builder can copy (it saves the model's tokenizer beside it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size - 1)}
    vocab["<unk>"] = vocab_size - 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(where)


def export_genai_cases(out_dir, family):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg, attention, moe = GENAI[family]
    cfgd = dict(cfg)
    mt = cfgd.pop("model_type")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, built = os.path.join(tmp, "hf"), os.path.join(tmp, "onnx")
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **cfgd)).eval().save_pretrained(ckpt)
        word_level_tokenizer(cfg["vocab_size"], ckpt)
        subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", ckpt, "-o", built,
                        "-p", "fp32", "-e", "cpu"], check=True)
        subprocess.run([sys.executable, os.path.join(TOOLS, "build_genai_cases.py"), built, out_dir, family],
                       check=True)
    for phase in ("prefill", "decode"):
        info_path = os.path.join(out_dir, f"genai_{family}.{phase}", "info.json")
        info = json.load(open(info_path))
        info.update(expected(attention, moe), exporter="onnxruntime-genai 0.18 builder", config=cfg)
        info["source"] = "held-out: " + info["source"]
        json.dump(info, open(info_path, "w"), indent=1)


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return
    if args[0] == "--list":
        print("\n".join(all_names()))
        return
    out_dir, wanted = args[0], args[1:] or all_names()
    unknown = [n for n in wanted if n not in all_names()]
    if unknown:
        raise SystemExit(f"export_heldout.py: unknown model {', '.join(unknown)} (see --list)")
    os.makedirs(out_dir, exist_ok=True)
    done = set()
    for name in wanted:
        if name.startswith("genai_"):
            family = name[len("genai_"):].split(".")[0]
            if family not in done:
                export_genai_cases(out_dir, family)
                done.add(family)
        elif name.endswith("_trace"):
            export_hf_case(out_dir, name, name[: -len("_trace")], dynamo=False)
        else:
            export_hf_case(out_dir, name, name, dynamo=True)


if __name__ == "__main__":
    main()
