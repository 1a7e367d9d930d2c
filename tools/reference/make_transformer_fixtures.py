"""Writes the FLUX transformer parity fixtures (Tests/Fixtures/transformer/) from diffusers' FluxTransformer2DModel.

Each case is a tiny FluxTransformer2DModel with seeded random weights, saved twice (a diffusers folder and a BFL
single file holding the same tensors), one set of inputs and the reference output:

    NAME/diffusers/               save_pretrained output (config.json + safetensors, sharded for some cases)
    NAME/flux1.safetensors        the same weights in the Black Forest Labs layout (flux_bfl_keys.py)
    NAME/inputs.safetensors       f32, named as FluxTransformer2DModel.forward's arguments
    NAME/outputs.safetensors      f32 `sample` = model(**inputs, return_dict=False)[0]
    NAME/case.json                what the case is and exercises, plus diagnostics

The reference output is computed by the model loaded back from the diffusers folder and upcast to f32, so for bf16
cases it is exactly what an f32 implementation reading the bf16 file should produce. Before a case is written the
BFL file is checked twice against diffusers itself: its own converter (convert_flux_transformer_checkpoint_to_diffusers)
must give back every tensor bit for bit, and FluxTransformer2DModel.from_single_file on it must give the same
`sample`.

Usage (see README.md):  python make_transformer_fixtures.py [--out DIR] [--spec cases.json]
Without --spec it writes the committed cases below; --spec FILE reads a JSON list of cases of the same form (used
for the held-out set kept outside the repository).
"""

from __future__ import annotations

import argparse
import contextlib
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
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import FluxTransformer2DModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flux_bfl_keys import diffusers_to_bfl  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures" / "transformer"

# Linear weights from PyTorch's default init are U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1/(3 fan_in); times
# sqrt(3) gives variance 1/fan_in, so activations stay O(1) through the blocks and every block visibly moves `sample`.
LINEAR_WEIGHT_GAIN = math.sqrt(3.0)
# q/k RMSNorm weights start at exactly 1; give each its own values so that mixing up query/key norms is caught.
NORM_WEIGHT_SPREAD = 0.25

CASES = [
    {
        "name": "dev_tiny",
        "seed": 1001,
        "config": dict(in_channels=8, num_layers=2, num_single_layers=3, attention_head_dim=16,
                       num_attention_heads=2, joint_attention_dim=24, pooled_projection_dim=12,
                       guidance_embeds=True, axes_dims_rope=[4, 6, 6]),
        "dtype": "float32", "max_shard_size": None,
        "batch": 1, "grid": [3, 5], "txt_tokens": 7,
        "timestep": [0.731], "guidance": [3.5],
        "ids": {"kind": "integer", "img_first": 1.0, "row_offset": 2.0, "col_offset": 1.0, "txt_max": 7},
        "exercises": "guidance embedding (dev); batch 1; non-square 3x5 image grid; 7 (odd) text tokens; "
                     "2 double + 3 single blocks; integer ids all non-zero (first axis 1, offset rows/cols, "
                     "random text ids); f32 weights in single files",
    },
    {
        "name": "schnell_tiny_bf16",
        "seed": 2002,
        "config": dict(in_channels=4, num_layers=1, num_single_layers=2, attention_head_dim=8,
                       num_attention_heads=3, joint_attention_dim=16, pooled_projection_dim=8,
                       guidance_embeds=False, axes_dims_rope=[2, 2, 4]),
        "dtype": "bfloat16", "max_shard_size": "40KB",
        "batch": 2, "grid": [4, 3], "txt_tokens": 5,
        "timestep": [0.25, 0.9], "guidance": None,
        "ids": {"kind": "integer", "img_first": 3.0, "row_offset": 1.0, "col_offset": 4.0, "txt_max": 5},
        "exercises": "no guidance embedding (schnell); batch 2 with different timesteps; 4x3 grid; 5 text tokens; "
                     "3 heads; bf16 weights (reference = bf16 weights upcast to f32); sharded diffusers save "
                     "with index json",
    },
    {
        "name": "dev_batch2_odd",
        "seed": 3003,
        # Two heads, not four: at 4 x 24 = 96 wide the f32 weights alone are ~4.3 MB per case, over the size budget.
        "config": dict(in_channels=16, out_channels=12, num_layers=1, num_single_layers=1, attention_head_dim=24,
                       num_attention_heads=2, joint_attention_dim=40, pooled_projection_dim=20,
                       guidance_embeds=True, axes_dims_rope=[8, 8, 8]),
        "dtype": "float32", "max_shard_size": None,
        "batch": 2, "grid": [5, 3], "txt_tokens": 9,
        "timestep": [0.5, 0.137], "guidance": [3.5, 4.0],
        "ids": {"kind": "fractional", "img_first": 0.5, "row_offset": 1.25, "row_step": 0.75,
                "col_offset": 0.3, "col_step": 1.5, "txt_low": 0.1, "txt_high": 6.0},
        "exercises": "guidance with batch 2 (different guidance and timestep per item); out_channels 12 != "
                     "in_channels 16; 5x3 grid; 9 text tokens; head_dim 24 with RoPE axes (8,8,8); "
                     "non-integer ids on every axis; f32 weights",
    },
]


def build_model(case: dict) -> FluxTransformer2DModel:
    torch.manual_seed(case["seed"])
    cfg = dict(case["config"])
    cfg["axes_dims_rope"] = tuple(cfg["axes_dims_rope"])
    model = FluxTransformer2DModel(**cfg)
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(LINEAR_WEIGHT_GAIN)
            elif isinstance(module, torch.nn.RMSNorm) and module.weight is not None:
                noise = torch.randn(module.weight.shape, generator=gen)
                module.weight.copy_(1.0 + NORM_WEIGHT_SPREAD * noise)
    return model.eval()


def make_ids(case: dict, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = case["grid"]
    spec = case["ids"]
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    if spec["kind"] == "integer":
        rows = rows + spec["row_offset"]
        cols = cols + spec["col_offset"]
        txt = torch.randint(1, spec["txt_max"] + 1, (case["txt_tokens"], 3), generator=gen).double()
    elif spec["kind"] == "fractional":
        rows = rows * spec["row_step"] + spec["row_offset"]
        cols = cols * spec["col_step"] + spec["col_offset"]
        u = torch.rand((case["txt_tokens"], 3), generator=gen, dtype=torch.float64)
        txt = spec["txt_low"] + (spec["txt_high"] - spec["txt_low"]) * u
    elif spec["kind"] == "pipeline":  # exactly what FluxPipeline passes: (0, row, col) and all-zero text ids
        txt = torch.zeros((case["txt_tokens"], 3), dtype=torch.float64)
    else:
        raise ValueError(f"unknown ids kind {spec['kind']}")
    # Row-major over the (height, width) grid with (first, row, col) per token, as FluxPipeline packs latents.
    first = torch.full((h, w), spec.get("img_first", 0.0), dtype=torch.float64)
    img = torch.stack([first, rows, cols], dim=-1).reshape(h * w, 3)
    img, txt = img.float(), txt.float()
    if spec["kind"] != "pipeline" and not ((img != 0).all() and (txt != 0).all()):
        raise AssertionError("every id must be non-zero")
    return img.contiguous(), txt.contiguous()


def make_inputs(case: dict) -> dict[str, torch.Tensor]:
    cfg = case["config"]
    gen = torch.Generator().manual_seed(case["seed"] + 2)
    b, (h, w), s_txt = case["batch"], case["grid"], case["txt_tokens"]
    inputs = {
        "hidden_states": torch.randn((b, h * w, cfg["in_channels"]), generator=gen),
        "encoder_hidden_states": torch.randn((b, s_txt, cfg["joint_attention_dim"]), generator=gen),
        "pooled_projections": torch.randn((b, cfg["pooled_projection_dim"]), generator=gen),
        "timestep": torch.tensor(case["timestep"], dtype=torch.float32),
    }
    inputs["img_ids"], inputs["txt_ids"] = make_ids(case, gen)
    if cfg["guidance_embeds"]:
        inputs["guidance"] = torch.tensor(case["guidance"], dtype=torch.float32)
    elif case.get("guidance") is not None:
        raise ValueError(f"{case['name']}: guidance given for a model without guidance_embeds")
    for name in ("timestep", "guidance"):
        if name in inputs and inputs[name].shape != (b,):
            raise ValueError(f"{case['name']}: {name} must have one value per batch item")
    return {k: v.contiguous() for k, v in inputs.items()}


def run(model: torch.nn.Module, inputs: dict[str, torch.Tensor], dtype=torch.float32) -> torch.Tensor:
    with torch.no_grad():
        args = {k: v.to(dtype) if k in ("hidden_states", "encoder_hidden_states", "pooled_projections") else v
                for k, v in inputs.items()}
        if dtype != torch.float32:
            args["timestep"] = args["timestep"].to(dtype)
            if "guidance" in args:
                args["guidance"] = args["guidance"].to(dtype)
        return model(**args, return_dict=False)[0]


def own_memory(model: torch.nn.Module) -> torch.nn.Module:
    """Copies every parameter into fresh (aligned) memory. Weights read from a safetensors mmap can sit at any
    offset, and CPU kernels then take other SIMD paths that differ in the last bit; copies make runs comparable."""
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
    return model


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a - ref| / max |ref|, in f64."""
    a, ref = a.double(), ref.double()
    return float((a - ref).abs().max() / ref.abs().max())


@contextlib.contextmanager
def converter_sizes_for(inner_dim: int):
    """diffusers' converter splits single-block linear1 with the full-size (3072, 3072, 3072, 12288); map that
    one split to this model's (D, D, D, 4D) while diffusers converts our tiny BFL file."""
    original = torch.split
    full = (3072, 3072, 3072, 12288)

    def split(tensor, split_size_or_sections, dim=0):
        if isinstance(split_size_or_sections, (list, tuple)) and tuple(split_size_or_sections) == full:
            split_size_or_sections = (inner_dim, inner_dim, inner_dim, 4 * inner_dim)
        return original(tensor, split_size_or_sections, dim)

    torch.split = split
    try:
        yield
    finally:
        torch.split = original


def check_bfl_roundtrip(bfl: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], inner_dim: int) -> None:
    with converter_sizes_for(inner_dim):
        back = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    if set(back) != set(reference):
        raise AssertionError(f"key sets differ: {sorted(set(back) ^ set(reference))}")
    for k, v in reference.items():
        if back[k].dtype != v.dtype or back[k].shape != v.shape or not torch.equal(back[k], v):
            raise AssertionError(f"{k}: diffusers' converter does not give back the same tensor")


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
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[case["dtype"]]

    model = build_model(case).to(dtype)
    save_kwargs = {"max_shard_size": case["max_shard_size"]} if case["max_shard_size"] else {}
    model.save_pretrained(diff_dir, safe_serialization=True, **save_kwargs)
    saved_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # The reference model is what was written, read back and upcast to f32.
    ref_model = own_memory(FluxTransformer2DModel.from_pretrained(diff_dir, torch_dtype=dtype).float().eval())
    for k, v in ref_model.state_dict().items():
        if not torch.equal(v, saved_sd[k].float()):
            raise AssertionError(f"{name}: {k} changed on the round trip through save_pretrained")

    inputs = make_inputs(case)
    sample = run(ref_model, inputs).contiguous()

    bfl = diffusers_to_bfl(saved_sd)
    check_bfl_roundtrip(bfl, saved_sd, ref_model.inner_dim)
    bfl_path = case_dir / "flux1.safetensors"
    save_file(bfl, str(bfl_path), metadata={"format": "pt"})
    with converter_sizes_for(ref_model.inner_dim):
        single = FluxTransformer2DModel.from_single_file(str(bfl_path), config=str(diff_dir), torch_dtype=dtype)
    single_sample = run(own_memory(single.float().eval()), inputs)
    if not torch.equal(single_sample, sample):
        raise AssertionError(f"{name}: from_single_file(flux1.safetensors) gives another sample "
                             f"(rel err {rel_err(single_sample, sample):.3g})")

    save_file(inputs, str(case_dir / "inputs.safetensors"), metadata={"format": "pt"})
    save_file({"sample": sample}, str(case_dir / "outputs.safetensors"), metadata={"format": "pt"})

    # Diagnostics: how far f32 torch is from f64 (the noise floor a 1e-4 test sits on), and how much one block
    # matters (so a test at 1e-4 fails when a block is skipped or wrong).
    f64 = run(copy.deepcopy(ref_model).double(), inputs, torch.float64)
    drops = {}
    for attr in ("transformer_blocks", "single_transformer_blocks"):
        for idx in (0, len(getattr(ref_model, attr)) - 1):
            m = copy.deepcopy(ref_model)
            blocks = getattr(m, attr)
            setattr(m, attr, torch.nn.ModuleList([blk for i, blk in enumerate(blocks) if i != idx]))
            drops[f"without {attr}.{idx}"] = round(rel_err(run(m, inputs), sample), 4)
    cfg = dict(ref_model.config)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_")}
    diff_files = sorted(p.name for p in diff_dir.iterdir())
    info = {
        "name": name,
        "exercises": case["exercises"],
        "config": cfg,
        "weights_dtype": case["dtype"],
        "diffusers_sharded": bool(case["max_shard_size"]),
        "diffusers_files": diff_files,
        "inputs": {k: {"shape": list(v.shape), "dtype": "float32"} for k, v in inputs.items()},
        "outputs": {"sample": {"shape": list(sample.shape), "dtype": "float32"}},
        "reference": "sample = FluxTransformer2DModel.from_pretrained(diffusers/).float().eval()"
                     "(**inputs, return_dict=False)[0] under torch.no_grad(), CPU, f32",
        "init": f"seed {case['seed']}; PyTorch default init, Linear weights x sqrt(3), "
                f"q/k RMSNorm weights 1 + {NORM_WEIGHT_SPREAD} N(0,1)",
        "diagnostics": {
            "sample_std": round(float(sample.std()), 4),
            "sample_abs_max": round(float(sample.abs().max()), 4),
            "f32_vs_f64_rel_err": float(f"{rel_err(sample, f64):.3g}"),
            "rel_err_note": "max |a - b| / max |b|",
            "rel_change_when_block_removed": drops,
        },
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
        print(f"{info['name']}: sample {info['outputs']['sample']['shape']} std {d['sample_std']} "
              f"f32-vs-f64 {d['f32_vs_f64_rel_err']} block-drop {min(d['rel_change_when_block_removed'].values())}"
              f"..{max(d['rel_change_when_block_removed'].values())} size {info['bytes_on_disk']} B")


if __name__ == "__main__":
    main()
