"""Writes the VAE parity fixtures (Tests/Fixtures/vae/) from diffusers' AutoencoderKL.

Each case is a tiny AutoencoderKL with seeded random weights, one decode and one encode example:

    NAME/diffusers/                   save_pretrained output (config.json + diffusion_pytorch_model.safetensors)
    NAME/ae.safetensors               (cases with "ldm_file") the same weights under the LDM / BFL `ae.safetensors`
                                      names, attention q/k/v/proj_out as 1x1 conv weights (C, C, 1, 1)
    NAME/decode_inputs.safetensors    `latents` (B, latent_channels, h, w) f32, as they enter `vae.decode`
    NAME/decode_outputs.safetensors   `sample` (B, out_channels, h*2^(n-1), w*2^(n-1)) = vae.decode(latents).sample
    NAME/encode_inputs.safetensors    `sample` (B, in_channels, H, W) f32 in -1..1
    NAME/encode_outputs.safetensors   `latent_mean` = vae.encode(sample).latent_dist.mean (before any shift/scale)
    NAME/case.json                    config, shapes, what the case exercises, diagnostics

The reference model is the one read back from diffusers/ with from_pretrained. For cases with an LDM file the script
checks, before writing, that diffusers' own convert_ldm_vae_checkpoint turns the LDM dict back into every diffusers
tensor bit for bit, and that AutoencoderKL.from_single_file(ae.safetensors, config=diffusers/) decodes and encodes
to the same bits.

Usage (see README.md):  python make_vae_fixtures.py [--out DIR] [--spec cases.json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import AutoencoderKL  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures" / "vae"

# Conv and Linear weights from PyTorch's default init have variance 1/(3 fan_in); x sqrt(3) gives 1/fan_in, so each
# residual branch adds an O(1) change and every block visibly moves the output.
WEIGHT_GAIN = math.sqrt(3.0)
# GroupNorm starts at weight 1, bias 0; random values make a wrong group count, a swapped weight/bias or a norm
# applied to the wrong tensor show in the output.
NORM_WEIGHT_SPREAD = 0.25
NORM_BIAS_SPREAD = 0.2
# Biases start at U(-1/sqrt(fan_in), ..): large enough to matter, left alone.

CASES = [
    {
        "name": "flux_l16",
        "seed": 4101,
        "config": dict(block_out_channels=[8, 16], layers_per_block=1, latent_channels=16, norm_num_groups=4,
                       use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611,
                       shift_factor=0.1159),
        "ldm_file": True,
        "decode": {"batch": 1, "size": [8, 12]},
        "encode": {"batch": 1, "size": [16, 24]},
        "exercises": "FLUX's layout (16 latent channels, no quant convs, mid attention, scaling/shift factors in "
                     "config) at tiny widths; non-square 8x12 latents; diffusers folder and LDM/BFL ae.safetensors",
    },
    {
        "name": "quant_3level_b2",
        "seed": 4202,
        "config": dict(block_out_channels=[8, 16, 16], layers_per_block=2, latent_channels=4, norm_num_groups=8,
                       use_quant_conv=True, use_post_quant_conv=True),
        "ldm_file": True,
        "decode": {"batch": 2, "size": [5, 7]},
        "encode": {"batch": 2, "size": [15, 22]},
        "exercises": "three levels (two up/downsamples), layers_per_block 2 (3 resnets per up block), latent 4 with "
                     "quant_conv/post_quant_conv (SD-style), batch 2, odd sizes (5x7 latents; 15x22 image through the "
                     "asymmetric (0,1,0,1) padding of Downsample2D), channel change 8->16 on a conv_shortcut; LDM "
                     "file with quant convs",
    },
    {
        "name": "noattn_io",
        "seed": 4303,
        "config": dict(in_channels=4, out_channels=2, block_out_channels=[12, 24], layers_per_block=1,
                       latent_channels=6, norm_num_groups=6, use_quant_conv=False, use_post_quant_conv=True,
                       mid_block_add_attention=False),
        "ldm_file": False,
        "decode": {"batch": 1, "size": [6, 3]},
        "encode": {"batch": 1, "size": [9, 14]},
        "exercises": "mid_block_add_attention false, in_channels 4 / out_channels 2, 6 groups of 2-4 channels, "
                     "only post_quant_conv, tall 6x3 latents, odd 9x14 image",
    },
]


def diffusers_to_ldm(sd: dict[str, torch.Tensor], num_up_blocks: int) -> dict[str, torch.Tensor]:
    """The LDM (and BFL ae.safetensors) names of a diffusers AutoencoderKL state dict: the inverse of diffusers'
    convert_ldm_vae_checkpoint. Decoder up blocks are numbered by resolution in LDM (up.0 is the last one run)."""
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        top, rest = parts[0], parts[1:]
        if top in ("quant_conv", "post_quant_conv"):
            out[key] = value
            continue
        name = ".".join(rest)
        if name.startswith("conv_norm_out."):
            name = "norm_out." + name[len("conv_norm_out."):]
        elif rest[0] == "down_blocks":
            i = rest[1]
            if rest[2] == "resnets":
                name = f"down.{i}.block.{rest[3]}." + ".".join(rest[4:])
            elif rest[2] == "downsamplers":
                name = f"down.{i}.downsample." + ".".join(rest[4:])
        elif rest[0] == "up_blocks":
            i = num_up_blocks - 1 - int(rest[1])
            if rest[2] == "resnets":
                name = f"up.{i}.block.{rest[3]}." + ".".join(rest[4:])
            elif rest[2] == "upsamplers":
                name = f"up.{i}.upsample." + ".".join(rest[4:])
        elif rest[0] == "mid_block":
            if rest[1] == "resnets":
                name = f"mid.block_{int(rest[2]) + 1}." + ".".join(rest[3:])
            elif rest[1] == "attentions":
                module = ".".join(rest[3:-1])
                ldm = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[module]
                name = f"mid.attn_1.{ldm}.{rest[-1]}"
                if ldm != "norm" and rest[-1] == "weight":
                    value = value[:, :, None, None]  # 1x1 conv, as BFL's AttnBlock stores it
        name = name.replace("conv_shortcut", "nin_shortcut")
        out[f"{top}.{name}"] = value.contiguous()
    if len(out) != len(sd):
        raise AssertionError("two diffusers names mapped to one LDM name")
    return out


def build_model(case: dict) -> AutoencoderKL:
    torch.manual_seed(case["seed"])
    cfg = dict(case["config"])
    n = len(cfg["block_out_channels"])
    cfg["block_out_channels"] = tuple(cfg["block_out_channels"])
    cfg["down_block_types"] = ("DownEncoderBlock2D",) * n
    cfg["up_block_types"] = ("UpDecoderBlock2D",) * n
    model = AutoencoderKL(**cfg)
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.mul_(WEIGHT_GAIN)
            elif isinstance(module, torch.nn.GroupNorm):
                module.weight.copy_(1.0 + NORM_WEIGHT_SPREAD * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(NORM_BIAS_SPREAD * torch.randn(module.bias.shape, generator=gen))
    return model.eval()


def make_inputs(case: dict, model: AutoencoderKL) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.config
    gen = torch.Generator().manual_seed(case["seed"] + 2)
    d, e = case["decode"], case["encode"]
    latents = torch.randn((d["batch"], cfg.latent_channels, *d["size"]), generator=gen)
    sample = 2 * torch.rand((e["batch"], cfg.in_channels, *e["size"]), generator=gen) - 1
    return latents.contiguous(), sample.contiguous()


def decode(model: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.decode(latents.to(model.dtype), return_dict=False)[0]


def encode(model: AutoencoderKL, sample: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.encode(sample.to(model.dtype), return_dict=False)[0].mean


def own_memory(model: torch.nn.Module) -> torch.nn.Module:
    """Copies every parameter into fresh memory, so that weights read from an mmap take the same CPU kernels."""
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
    return model


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a - ref| / max |ref|, in f64."""
    a, ref = a.double(), ref.double()
    return float((a - ref).abs().max() / ref.abs().max())


def without_attention(model: AutoencoderKL) -> AutoencoderKL:
    m = copy.deepcopy(model)
    for coder in (m.encoder, m.decoder):
        coder.mid_block.attentions = torch.nn.ModuleList([None] * len(coder.mid_block.attentions))
    return m


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_case(case: dict, out_root: Path) -> dict:
    torch.set_num_threads(1)
    name = case["name"]
    case_dir = out_root / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    diff_dir = case_dir / "diffusers"
    diff_dir.mkdir(parents=True)

    model = build_model(case)
    model.save_pretrained(diff_dir, safe_serialization=True)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ref = own_memory(AutoencoderKL.from_pretrained(diff_dir).float().eval())
    for k, v in ref.state_dict().items():
        if not torch.equal(v, saved[k]):
            raise AssertionError(f"{name}: {k} changed on the round trip through save_pretrained")

    latents, image = make_inputs(case, ref)
    sample = decode(ref, latents).contiguous()
    mean = encode(ref, image).contiguous()

    if case.get("ldm_file"):
        ldm = diffusers_to_ldm(saved, len(ref.config.block_out_channels))
        back = convert_ldm_vae_checkpoint(dict(ldm), dict(ref.config))
        if set(back) != set(saved):
            raise AssertionError(f"{name}: converter key sets differ: {sorted(set(back) ^ set(saved))}")
        for k, v in saved.items():
            if back[k].dtype != v.dtype or back[k].shape != v.shape or not torch.equal(back[k], v):
                raise AssertionError(f"{name}: {k}: diffusers' converter does not give back the same tensor")
        ldm_path = case_dir / "ae.safetensors"
        save_file(ldm, str(ldm_path), metadata={"format": "pt"})
        single = own_memory(AutoencoderKL.from_single_file(str(ldm_path), config=str(diff_dir)).float().eval())
        if not torch.equal(decode(single, latents), sample) or not torch.equal(encode(single, image), mean):
            raise AssertionError(f"{name}: from_single_file(ae.safetensors) decodes or encodes differently")

    save_file({"latents": latents}, str(case_dir / "decode_inputs.safetensors"), metadata={"format": "pt"})
    save_file({"sample": sample}, str(case_dir / "decode_outputs.safetensors"), metadata={"format": "pt"})
    save_file({"sample": image}, str(case_dir / "encode_inputs.safetensors"), metadata={"format": "pt"})
    save_file({"latent_mean": mean}, str(case_dir / "encode_outputs.safetensors"), metadata={"format": "pt"})

    # Diagnostics: the f32-vs-f64 floor under a 1e-4 test, and how much the mid attention matters.
    f64 = copy.deepcopy(ref).double()
    diagnostics = {
        "decode_sample_std": round(float(sample.std()), 4),
        "decode_sample_abs_max": round(float(sample.abs().max()), 4),
        "encode_mean_std": round(float(mean.std()), 4),
        "decode_f32_vs_f64_rel_err": float(f"{rel_err(sample, decode(f64, latents.double())):.3g}"),
        "encode_f32_vs_f64_rel_err": float(f"{rel_err(mean, encode(f64, image.double())):.3g}"),
        "rel_err_note": "max |a - b| / max |b|",
    }
    if ref.config.mid_block_add_attention:
        plain = without_attention(ref)
        diagnostics["decode_rel_change_without_attention"] = round(rel_err(decode(plain, latents), sample), 4)
        diagnostics["encode_rel_change_without_attention"] = round(rel_err(encode(plain, image), mean), 4)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(ref.config).items() if not k.startswith("_")}
    info = {
        "name": name,
        "exercises": case["exercises"],
        "config": cfg,
        "files": sorted(str(p.relative_to(case_dir)) for p in case_dir.rglob("*") if p.is_file()),
        "decode": {"latents": list(latents.shape), "sample": list(sample.shape)},
        "encode": {"sample": list(image.shape), "latent_mean": list(mean.shape)},
        "reference": "AutoencoderKL.from_pretrained(diffusers/).float().eval() under torch.no_grad() on the CPU: "
                     "sample = decode(latents, return_dict=False)[0]; "
                     "latent_mean = encode(sample, return_dict=False)[0].mean",
        "init": f"seed {case['seed']}; PyTorch default init, Conv2d/Linear weights x sqrt(3), GroupNorm weight "
                f"1 + {NORM_WEIGHT_SPREAD} N(0,1), bias {NORM_BIAS_SPREAD} N(0,1)",
        "diagnostics": diagnostics,
        "versions": {"torch": torch.__version__.split("+")[0], "diffusers": diffusers.__version__},
    }
    (case_dir / "case.json").write_text(json.dumps(info, indent=2) + "\n")
    info["bytes_on_disk"] = folder_size(case_dir)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--spec", type=Path, help="JSON list of cases to write instead of the built-in ones")
    parser.add_argument("--only", nargs="*", help="write only these case names")
    args = parser.parse_args()
    if diffusers.__version__ != "0.42.1" or not torch.__version__.startswith("2.11.0"):
        print(f"warning: fixtures are pinned to diffusers 0.42.1 / torch 2.11.0, found "
              f"{diffusers.__version__} / {torch.__version__}", file=sys.stderr)
    cases = json.loads(args.spec.read_text()) if args.spec else CASES
    if args.only:
        cases = [c for c in cases if c["name"] in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        info = write_case(case, args.out)
        d = info["diagnostics"]
        print(f"{info['name']}: decode {info['decode']['latents']} -> {info['decode']['sample']} "
              f"std {d['decode_sample_std']}, encode {info['encode']['sample']} -> {info['encode']['latent_mean']} "
              f"std {d['encode_mean_std']}; f32-vs-f64 {d['decode_f32_vs_f64_rel_err']} / "
              f"{d['encode_f32_vs_f64_rel_err']}; without attention "
              f"{d.get('decode_rel_change_without_attention', '-')} / "
              f"{d.get('encode_rel_change_without_attention', '-')}; {info['bytes_on_disk']} B")


if __name__ == "__main__":
    main()
