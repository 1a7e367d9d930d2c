"""Diffusers -> Black Forest Labs (BFL) single-file layout for the FLUX.1 transformer.

`diffusers_to_bfl(state_dict)` takes a `FluxTransformer2DModel.state_dict()` (any size, any dtype) and returns
the same weights under the names of BFL's `flux1-dev.safetensors` / `flux1-schnell.safetensors`
(`double_blocks.N.img_attn.qkv.weight`, `single_blocks.N.linear1.weight`, ...). It is written as the inverse of
diffusers' `convert_flux_transformer_checkpoint_to_diffusers` (src/diffusers/loaders/single_file_utils.py,
diffusers 0.42.1); make_transformer_fixtures.py checks that inverse bit for bit by running diffusers' converter
on the result.

Facts of the layout (from that converter):
- fused projections are concatenations along dim 0 (output features):
  img_attn.qkv = [to_q; to_k; to_v], txt_attn.qkv = [add_q_proj; add_k_proj; add_v_proj],
  single linear1 = [to_q; to_k; to_v; proj_mlp] (sizes D, D, D, 4D); weights and biases alike.
- final_layer.adaLN_modulation.1 holds (shift, scale) where diffusers' norm_out.linear holds (scale, shift):
  the two halves (dim 0) are swapped, for weight and bias.
- q/k RMSNorm weights are named `...norm.query_norm.scale` / `...norm.key_norm.scale`.
- real files carry no `model.diffusion_model.` prefix (the converter strips it if present); neither do ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# One-to-one renames outside the blocks: BFL prefix -> diffusers prefix (each has .weight and .bias).
GLOBAL_LINEARS = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "final_layer.linear": "proj_out",
}

# Present only when the model was built with guidance_embeds=True (FLUX.1-dev).
GUIDANCE_LINEARS = {
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
}

# Halves swapped: BFL (shift, scale) vs diffusers (scale, shift).
SWAPPED_LINEARS = {
    "final_layer.adaLN_modulation.1": "norm_out.linear",
}

# Inside double_blocks.N (BFL) / transformer_blocks.N (diffusers).
DOUBLE_LINEARS = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
}
DOUBLE_FUSED = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
DOUBLE_NORMS = {  # full tensor names, no bias
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}

# Inside single_blocks.N (BFL) / single_transformer_blocks.N (diffusers).
SINGLE_LINEARS = {
    "modulation.lin": "norm.linear",
    "linear2": "proj_out",
}
SINGLE_FUSED = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
}
SINGLE_NORMS = {
    "norm.query_norm.scale": "attn.norm_q.weight",
    "norm.key_norm.scale": "attn.norm_k.weight",
}


def _block_count(keys, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    indices = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    if indices and indices != set(range(max(indices) + 1)):
        raise ValueError(f"{prefix}: block indices are not 0..N-1: {sorted(indices)}")
    return len(indices)


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def diffusers_to_bfl(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns a new dict of contiguous tensors (copies) in the BFL layout; raises if any key is left unmapped."""
    src = dict(state_dict)
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(name: str) -> torch.Tensor:
        if name not in src:
            raise KeyError(f"diffusers state dict has no '{name}'")
        used.add(name)
        return src[name]

    def linear(bfl: str, diff: str) -> None:
        for p in ("weight", "bias"):
            out[f"{bfl}.{p}"] = take(f"{diff}.{p}").clone().contiguous()

    def fused(bfl: str, parts: tuple[str, ...]) -> None:
        for p in ("weight", "bias"):
            out[f"{bfl}.{p}"] = torch.cat([take(f"{d}.{p}") for d in parts], dim=0).contiguous()

    def swapped(bfl: str, diff: str) -> None:
        for p in ("weight", "bias"):
            out[f"{bfl}.{p}"] = _swap_halves(take(f"{diff}.{p}")).contiguous()

    has_guidance = any(k.startswith("time_text_embed.guidance_embedder.") for k in src)
    for bfl, diff in GLOBAL_LINEARS.items():
        linear(bfl, diff)
    if has_guidance:
        for bfl, diff in GUIDANCE_LINEARS.items():
            linear(bfl, diff)
    for bfl, diff in SWAPPED_LINEARS.items():
        swapped(bfl, diff)

    for i in range(_block_count(src, "transformer_blocks")):
        b, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for bfl, diff in DOUBLE_LINEARS.items():
            linear(b + bfl, d + diff)
        for bfl, parts in DOUBLE_FUSED.items():
            fused(b + bfl, tuple(d + p for p in parts))
        for bfl, diff in DOUBLE_NORMS.items():
            out[b + bfl] = take(d + diff).clone().contiguous()

    for i in range(_block_count(src, "single_transformer_blocks")):
        b, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for bfl, diff in SINGLE_LINEARS.items():
            linear(b + bfl, d + diff)
        for bfl, parts in SINGLE_FUSED.items():
            fused(b + bfl, tuple(d + p for p in parts))
        for bfl, diff in SINGLE_NORMS.items():
            out[b + bfl] = take(d + diff).clone().contiguous()

    left = sorted(set(src) - used)
    if left:
        raise ValueError(f"diffusers keys with no BFL name: {left}")
    return out
