#!/usr/bin/env python3
"""Builds the tiny Hugging Face MoE checkpoints in Tests/Fixtures/checkpoints/.

For each family the script builds a tiny model with transformers' own classes, gives its MoE layer random weights
(rounded to the storage dtype), saves the checkpoint in the Hub key layout, runs random `hidden_states` [T, H] through
transformers' own MoE block in float32, and saves the input (`input.safetensors`, tensor `hidden_states`) and the
block's output (`expected.safetensors`, tensor `output`, F32) next to it.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors numpy
    /tmp/venv/bin/python scripts/make_checkpoint_fixtures.py [--out Tests/Fixtures/checkpoints]

Tokens whose top-k choice (or DeepSeek group choice) is within `MARGIN` of a tie are redrawn, so that float32
summation order cannot flip a routing decision between transformers and WideEP.
"""
import argparse
import json
import math
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file

MARGIN = 2e-3
TOKENS = 32


def rounded(t, dtype):
    """`t` rounded to `dtype` and back to float32 (the values the checkpoint stores exactly)."""
    return t.to(dtype).to(torch.float32)


def randn(gen, *shape, std):
    return torch.randn(*shape, generator=gen, dtype=torch.float32) * std


def margins(choice, k, groups=1, keep_groups=1):
    """Smallest gap between the k-th and (k+1)-th choice score of each token (and between kept and dropped groups)."""
    t, e = choice.shape
    gap = torch.full((t,), float("inf"), dtype=torch.float64)
    c = choice.to(torch.float64)
    if groups > 1:
        g = c.view(t, groups, e // groups).topk(2, dim=-1)[0].sum(-1)
        gs = g.sort(dim=-1, descending=True)[0]
        gap = torch.minimum(gap, gs[:, keep_groups - 1] - gs[:, keep_groups])
        kept = torch.zeros_like(g).scatter_(1, g.topk(keep_groups, dim=-1)[1], 1.0)
        mask = kept.unsqueeze(-1).expand(t, groups, e // groups).reshape(t, e)
        c = c.masked_fill(mask == 0, float("-inf"))
    s = c.sort(dim=-1, descending=True)[0]
    gap = torch.minimum(gap, s[:, k - 1] - s[:, k])
    return gap


def draw_input(gen, hidden, choice_fn, k, groups=1, keep_groups=1):
    """[T, H] standard-normal tokens whose routing decisions are at least MARGIN away from a tie."""
    x = randn(gen, TOKENS, hidden, std=1.0)
    for _ in range(1000):
        bad = margins(choice_fn(x), k, groups, keep_groups) < MARGIN
        if not bad.any():
            return x
        x[bad] = randn(gen, int(bad.sum()), hidden, std=1.0)
    raise RuntimeError("could not draw well-separated tokens")


def fill_mlp(gen, mlp, hidden, inter, dtype):
    """Random SwiGLU weights, rounded to dtype, scaled so activations stay O(1)."""
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(rounded(randn(gen, inter, hidden, std=hidden ** -0.5), dtype))
        mlp.up_proj.weight.copy_(rounded(randn(gen, inter, hidden, std=hidden ** -0.5), dtype))
        mlp.down_proj.weight.copy_(rounded(randn(gen, hidden, inter, std=inter ** -0.5), dtype))


def fill_experts(gen, experts, e, hidden, inter, dtype):
    """Random fused expert weights [E, 2I, H] and [E, H, I], rounded to dtype."""
    with torch.no_grad():
        experts.gate_up_proj.copy_(rounded(randn(gen, e, 2 * inter, hidden, std=hidden ** -0.5), dtype))
        experts.down_proj.copy_(rounded(randn(gen, e, hidden, inter, std=inter ** -0.5), dtype))


def tiny_common(hidden):
    return dict(hidden_size=hidden, num_attention_heads=2, num_key_value_heads=2, vocab_size=16,
                max_position_embeddings=64, tie_word_embeddings=False)


def run_block(block, x):
    with torch.no_grad():
        return block(x.unsqueeze(0)).reshape(x.shape).to(torch.float32)


def save_case(out, name, model, block, x, dtype, shard=None, keep_f32=()):
    """Saves the model in `dtype` (names in keep_f32 stay F32), the input and the block's output."""
    path = os.path.join(out, name)
    shutil.rmtree(path, ignore_errors=True)
    y = run_block(block, x)
    model = model.to(dtype)
    with torch.no_grad():
        for mod_name, buf_name, value in keep_f32:
            setattr(model.get_submodule(mod_name), buf_name, value)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(path, **kwargs)
    for junk in ("generation_config.json",):
        if os.path.exists(os.path.join(path, junk)):
            os.remove(os.path.join(path, junk))
    save_file({"hidden_states": x.contiguous()}, os.path.join(path, "input.safetensors"))
    save_file({"output": y.contiguous()}, os.path.join(path, "expected.safetensors"))
    return path


def deepseek_v3(out, gen):
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    h, i, e = 64, 32, 16
    cfg = DeepseekV3Config(**tiny_common(h), intermediate_size=96, moe_intermediate_size=i, num_hidden_layers=2,
                           first_k_dense_replace=1, n_routed_experts=e, num_experts_per_tok=4, n_group=4,
                           topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                           q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8)
    model = DeepseekV3ForCausalLM(cfg).eval()
    moe = model.model.layers[1].mlp
    bf = torch.bfloat16
    with torch.no_grad():
        moe.gate.weight.copy_(rounded(randn(gen, e, h, std=2.0 * h ** -0.5), bf))
        # Small positive-or-negative bias: scores + bias stay > 0, where the -inf (DeepSeek) and 0.0 masks agree.
        bias = (torch.rand(e, generator=gen) - 0.5) * 0.1
        moe.gate.e_score_correction_bias.copy_(bias)
    fill_experts(gen, moe.experts, e, h, i, bf)
    fill_mlp(gen, moe.shared_experts, h, i, bf)
    fill_mlp(gen, model.model.layers[0].mlp, h, 96, bf)

    def choice(x):
        return torch.sigmoid(x @ moe.gate.weight.T) + moe.gate.e_score_correction_bias
    x = draw_input(gen, h, choice, 4, 4, 2)
    save_case(out, "deepseek-v3", model, moe, x, bf, shard="40KB",
              keep_f32=[("model.layers.1.mlp.gate", "e_score_correction_bias", bias.clone())])


def qwen2_moe(out, gen):
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM
    h, i, e, si = 64, 32, 8, 48
    cfg = Qwen2MoeConfig(**tiny_common(h), intermediate_size=96, moe_intermediate_size=i,
                         shared_expert_intermediate_size=si, num_hidden_layers=2, num_experts=e,
                         num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[0])
    model = Qwen2MoeForCausalLM(cfg).eval()
    moe = model.model.layers[1].mlp
    bf = torch.bfloat16
    with torch.no_grad():
        moe.gate.weight.copy_(rounded(randn(gen, e, h, std=2.0 * h ** -0.5), bf))
        moe.shared_expert_gate.weight.copy_(rounded(randn(gen, 1, h, std=h ** -0.5), bf))
    fill_experts(gen, moe.experts, e, h, i, bf)
    fill_mlp(gen, moe.shared_expert, h, si, bf)
    fill_mlp(gen, model.model.layers[0].mlp, h, 96, bf)
    x = draw_input(gen, h, lambda x: torch.softmax(x @ moe.gate.weight.T, -1), 2)
    save_case(out, "qwen2-moe", model, moe, x, bf)


def qwen3_moe(out, gen):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    h, i, e = 64, 32, 16
    cfg = Qwen3MoeConfig(**tiny_common(h), head_dim=32, intermediate_size=96, moe_intermediate_size=i,
                         num_hidden_layers=1, num_experts=e, num_experts_per_tok=4, norm_topk_prob=True,
                         decoder_sparse_step=1, mlp_only_layers=[])
    model = Qwen3MoeForCausalLM(cfg).eval()
    moe = model.model.layers[0].mlp
    f16 = torch.float16
    with torch.no_grad():
        moe.gate.weight.copy_(rounded(randn(gen, e, h, std=2.0 * h ** -0.5), f16))
    fill_experts(gen, moe.experts, e, h, i, f16)
    x = draw_input(gen, h, lambda x: torch.softmax(x @ moe.gate.weight.T, -1), 4)
    save_case(out, "qwen3-moe-f16", model, moe, x, f16)


def mixtral(out, gen, dtype, name):
    from transformers import MixtralConfig, MixtralForCausalLM
    h, i, e = 64, 32, 8
    cfg = MixtralConfig(**tiny_common(h), intermediate_size=i, num_hidden_layers=1, num_local_experts=e,
                        num_experts_per_tok=2)
    model = MixtralForCausalLM(cfg).eval()
    moe = model.model.layers[0].mlp
    with torch.no_grad():
        moe.gate.weight.copy_(rounded(randn(gen, e, h, std=2.0 * h ** -0.5), dtype))
    fill_experts(gen, moe.experts, e, h, i, dtype)
    x = draw_input(gen, h, lambda x: torch.softmax(x @ moe.gate.weight.T, -1), 2)
    save_case(out, name, model, moe, x, dtype)


def quantize_blocks(w):
    """DeepSeek-V3 FP8: e4m3 weights and per-128×128-block `weight_scale_inv` (partial edge blocks allowed)."""
    rows, cols = w.shape
    br, bc = math.ceil(rows / 128), math.ceil(cols / 128)
    q = torch.empty_like(w)
    scale_inv = torch.empty(br, bc, dtype=torch.float32)
    for a in range(br):
        for b in range(bc):
            blk = w[a * 128:(a + 1) * 128, b * 128:(b + 1) * 128]
            s = blk.abs().max().clamp(min=1e-12) / 448.0
            scale_inv[a, b] = s
            q[a * 128:(a + 1) * 128, b * 128:(b + 1) * 128] = blk / s
    q8 = q.to(torch.float8_e4m3fn)
    rep = scale_inv.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
    return q8, scale_inv, q8.to(torch.float32) * rep


def deepseek_v3_fp8(out, gen):
    """One MoE layer in DeepSeek-V3's FP8 layout, H=160 and I=96 so blocks are partial at the edges."""
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    h, i, e = 160, 96, 8
    cfg = DeepseekV3Config(**tiny_common(h), intermediate_size=192, moe_intermediate_size=i, num_hidden_layers=1,
                           first_k_dense_replace=0, n_routed_experts=e, num_experts_per_tok=2, n_group=4,
                           topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                           q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8)
    moe = DeepseekV3MoE(cfg).eval()
    p = "model.layers.0.mlp."
    tensors = {}
    with torch.no_grad():
        gate_w = rounded(randn(gen, e, h, std=2.0 * h ** -0.5), torch.bfloat16)
        bias = (torch.rand(e, generator=gen) - 0.5) * 0.1
        moe.gate.weight.copy_(gate_w)
        moe.gate.e_score_correction_bias.copy_(bias)
        tensors[p + "gate.weight"] = gate_w.to(torch.bfloat16)
        tensors[p + "gate.e_score_correction_bias"] = bias.clone()

        def linear(key, rows, cols):
            # Spread magnitudes across blocks so each block gets its own scale.
            w = randn(gen, rows, cols, std=cols ** -0.5) * (1 + torch.rand(rows, 1, generator=gen))
            q8, s, deq = quantize_blocks(w)
            tensors[key + ".weight"] = q8
            tensors[key + ".weight_scale_inv"] = s
            return deq

        gu = torch.empty(e, 2 * i, h)
        dn = torch.empty(e, h, i)
        for x in range(e):
            gu[x, :i] = linear(f"{p}experts.{x}.gate_proj", i, h)
            gu[x, i:] = linear(f"{p}experts.{x}.up_proj", i, h)
            dn[x] = linear(f"{p}experts.{x}.down_proj", h, i)
        moe.experts.gate_up_proj.copy_(gu)
        moe.experts.down_proj.copy_(dn)
        moe.shared_experts.gate_proj.weight.copy_(linear(p + "shared_experts.gate_proj", i, h))
        moe.shared_experts.up_proj.weight.copy_(linear(p + "shared_experts.up_proj", i, h))
        moe.shared_experts.down_proj.weight.copy_(linear(p + "shared_experts.down_proj", h, i))

    def choice(x):
        return torch.sigmoid(x @ moe.gate.weight.T) + moe.gate.e_score_correction_bias
    x = draw_input(gen, h, choice, 2, 4, 2)
    path = os.path.join(out, "deepseek-v3-fp8")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    d = cfg.to_dict()
    d["architectures"] = ["DeepseekV3ForCausalLM"]
    d["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "weight_block_size": [128, 128]}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    save_file({"hidden_states": x.contiguous()}, os.path.join(path, "input.safetensors"))
    save_file({"output": run_block(moe, x).contiguous()}, os.path.join(path, "expected.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "Fixtures", "checkpoints"))
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    deepseek_v3(args.out, gen)
    deepseek_v3_fp8(args.out, gen)
    qwen2_moe(args.out, gen)
    qwen3_moe(args.out, gen)
    mixtral(args.out, gen, torch.bfloat16, "mixtral")
    mixtral(args.out, gen, torch.float32, "mixtral-f32")
    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\nseed {args.seed}\n")
    print(f"wrote fixtures to {os.path.normpath(args.out)} with torch {torch.__version__}, "
          f"transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
