"""LoRA fixtures: random LoRA files in every FLUX.1 LoRA format diffusers reads, and what diffusers + peft make of them.

Uses the tiny dev pipeline of make_pipeline_fixtures.py (`Tests/Fixtures/pipeline/dev_tiny`, read as it is, loaded in
float32; 2 double + 2 single blocks, 2 heads x 16 = D 32, MLP 4D = 128, CLIP hidden 16 with 2 layers). For it this
script writes seeded random LoRA files, one per format (FORMATS below; keys, ranks, alphas differ per file, every
file touches attention and MLP projections of double and single blocks), to Tests/Fixtures/lora/<name>.safetensors,
and for each case (CASES: a list of (file, weight)) two references computed by diffusers 0.42.1 + peft 0.21.2 on
one CPU thread in f32:

  * cases/<case>.transformer.safetensors: `sample` of the LoRA'd FluxTransformer2DModel (dev_tiny's) on the inputs
    in transformer_inputs.safetensors (written once; same tensor names as Tests/Fixtures/transformer/*/inputs);
  * cases/<case>.image.safetensors: `image` of FluxPipeline (output_type="pt") with the packed `latents` stored in
    cases/<case>.inputs.safetensors, plus the string metadata of Tests/Fixtures/pipeline/cases (prompt, height,
    width, num_inference_steps, guidance_scale, max_sequence_length). Needed for the CLIP (`lora_te1_`) parts.

Every case file carries `loras` (JSON list of {"file", "format", "scale"} in load order; adapter i is named
"a<i>") and `adapter_weights`. The LoRA'd pipeline is `FluxPipeline.from_pretrained(dev_tiny, dtype=float32)`,
`load_lora_weights(file, adapter_name=...)` per file, then `set_adapters(names, adapter_weights=weights)`.

Before anything is written the script checks, for each file loaded alone, and stops if a check fails:
  1. diffusers, transformers and peft log no warning and raise no Python warning while loading, except three that
     are counted and allowed (none is about an unmatched key): "No LoRA keys associated to CLIPTextModel found with
     the prefix='text_encoder'" for a file without CLIP keys; peft's "Already found a `peft_config` attribute" for
     each adapter after the first; transformers' load report of a second CLIP adapter listing only the earlier
     adapters' weights as MISSING (they stay intact: the per-adapter delta check of every case shows it);
  2. peft injected exactly the modules this script expects from its own reading of the format (`expected_deltas`),
     and every injected module's scaling * lora_B @ lora_A equals the delta this script computes from the raw file by
     the rules documented in README.md (fused BFL layers split by rows of lora_B, scale alpha / rank): so every key
     written was applied, none dropped, and the scale rule is the one diffusers uses;
  3. the LoRA changes the transformer's `sample` (and, with CLIP parts, CLIP's pooled output) clearly.

diffusers' kohya converter hard-codes FLUX.1's single-block split (3072, 3072, 3072, 12288) for `linear1`; the script
runs diffusers' own converter source with only that literal replaced by (D, D, D, 4D) (`kohya_converter_for`).
diffusers 0.42.1 has no loader for BFL-named PEFT keys (`diffusion_model.double_blocks.N.img_attn.qkv.lora_A.weight`)
on FLUX.1: it ignores them all (the file loads to nothing, with only the "No LoRA keys associated" warnings). The
reference for the `bfl_peft` file is therefore diffusers run on the same tensors under the ComfyUI kohya names it does
read (`lora_A` -> `lora_down`, `lora_B` -> `lora_up`, the `diffusion_model.` prefix and `.alpha` kept); the script
asserts the plain file is ignored, so that a diffusers upgrade that starts reading it is noticed.

Deterministic (seeded, one thread, canonical safetensors headers via make_edit_fixtures.save_file): two runs give the
same sha256 for every file. Run with the pinned venv (README.md here), from the repository root:
    /work/venv-ref/bin/python tools/reference/make_lora_fixtures.py [--out DIR]
"""
import argparse
import contextlib
import inspect
import json
import logging
import pathlib
import shutil
import warnings

import torch
from diffusers import FluxPipeline
from diffusers.loaders import lora_conversion_utils, lora_pipeline
from diffusers.utils import logging as diffusers_logging
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file
from transformers.utils import logging as transformers_logging

from make_edit_fixtures import Collect, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "Tests" / "Fixtures" / "pipeline" / "dev_tiny"
OUT = ROOT / "Tests" / "Fixtures" / "lora"
NO_TE_WARNING = "No LoRA keys associated to CLIPTextModel found with the prefix='text_encoder'"
PEFT_SECOND_ADAPTER = "UserWarning: Already found a `peft_config` attribute in the model. This will lead to having multiple adapters"

# ---------------------------------------------------------------------------------------------------------------
# The modules, in BFL names, and what they are in diffusers. (in, out) sizes are in units of D (inner dim) unless
# noted; `split` is the rows of the fused output in diffusers modules.
D = 32
MLP = 4 * D
CLIP = 16
CLIP_FF = 32


def bfl_double(i, part):
    """BFL double-block module -> ((in, out), [(diffusers module, rows)])."""
    p = f"transformer_blocks.{i}."
    table = {
        "img_attn.qkv": ((D, 3 * D), [(p + "attn.to_q", D), (p + "attn.to_k", D), (p + "attn.to_v", D)]),
        "img_attn.proj": ((D, D), [(p + "attn.to_out.0", D)]),
        "txt_attn.qkv": ((D, 3 * D), [(p + "attn.add_q_proj", D), (p + "attn.add_k_proj", D),
                                      (p + "attn.add_v_proj", D)]),
        "txt_attn.proj": ((D, D), [(p + "attn.to_add_out", D)]),
        "img_mlp.0": ((D, MLP), [(p + "ff.net.0.proj", MLP)]),
        "img_mlp.2": ((MLP, D), [(p + "ff.net.2", D)]),
        "txt_mlp.0": ((D, MLP), [(p + "ff_context.net.0.proj", MLP)]),
        "txt_mlp.2": ((MLP, D), [(p + "ff_context.net.2", D)]),
    }
    return table[part]


def bfl_single(i, part):
    p = f"single_transformer_blocks.{i}."
    table = {
        "linear1": ((D, 3 * D + MLP), [(p + "attn.to_q", D), (p + "attn.to_k", D), (p + "attn.to_v", D),
                                       (p + "proj_mlp", MLP)]),
        "linear2": ((D + MLP, D), [(p + "proj_out", D)]),
    }
    return table[part]


def bfl_module(name):
    """'double_blocks.0.img_attn.qkv' -> ((in, out), splits)."""
    kind, i, part = name.split(".", 2)
    return bfl_double(int(i), part) if kind == "double_blocks" else bfl_single(int(i), part)


DIFFUSERS_SIZES = {}
for _i in range(2):
    for _part in ["img_attn.qkv", "img_attn.proj", "txt_attn.qkv", "txt_attn.proj", "img_mlp.0", "img_mlp.2",
                  "txt_mlp.0", "txt_mlp.2"]:
        (_in, _), _splits = bfl_double(_i, _part)
        for _m, _rows in _splits:
            DIFFUSERS_SIZES[_m] = (_in, _rows)
    for _part in ["linear1", "linear2"]:
        (_in, _), _splits = bfl_single(_i, _part)
        for _m, _rows in _splits:
            DIFFUSERS_SIZES[_m] = (_in, _rows)
CLIP_SIZES = {"self_attn.q_proj": (CLIP, CLIP), "self_attn.k_proj": (CLIP, CLIP), "self_attn.v_proj": (CLIP, CLIP),
              "self_attn.out_proj": (CLIP, CLIP), "mlp.fc1": (CLIP, CLIP_FF), "mlp.fc2": (CLIP_FF, CLIP)}

# ---------------------------------------------------------------------------------------------------------------
# The files. Each entry: a list of LoRA modules (target, rank, alpha or None, sparse-split flag); the writer turns
# them into the format's keys. Targets are BFL names (kohya, comfy, bfl_peft), XLabs processor names, diffusers
# module names (peft formats) or CLIP names "te.<layer>.<module>".
FORMATS = {
    "peft_diffusers": dict(format="diffusers/peft (no alpha: scale 1)", seed=501, modules=[
        *[(f"transformer_blocks.{i}.{m}", 4, None) for i in range(2)
          for m in ["attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_v_proj",
                    "ff.net.0.proj", "ff_context.net.2"]],
        *[(f"single_transformer_blocks.{i}.{m}", 4, None) for i in range(2)
          for m in ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out"]],
        ("te.0.self_attn.q_proj", 4, None), ("te.0.self_attn.v_proj", 4, None), ("te.1.mlp.fc1", 4, None)]),
    "peft_diffusers_alpha": dict(format="diffusers/peft with `.alpha` keys", seed=502, modules=[
        ("transformer_blocks.0.attn.to_k", 2, 8.0), ("transformer_blocks.0.attn.add_k_proj", 2, 8.0),
        ("transformer_blocks.0.attn.to_add_out", 2, 1.0), ("transformer_blocks.0.ff.net.2", 4, 8.0),
        ("transformer_blocks.0.ff_context.net.0.proj", 2, 8.0), ("transformer_blocks.1.attn.to_q", 2, 3.0),
        ("transformer_blocks.1.attn.to_v", 4, 2.0), ("single_transformer_blocks.0.proj_mlp", 2, 8.0),
        ("single_transformer_blocks.0.proj_out", 2, 8.0), ("single_transformer_blocks.1.attn.to_q", 4, 8.0),
        ("single_transformer_blocks.1.attn.to_k", 2, 1.0)]),
    "peft_diffusers_meta": dict(format="diffusers/peft with `lora_adapter_metadata` (save_lora_weights)", seed=503,
                                modules=[
        ("transformer_blocks.0.attn.to_out.0", 4, 2.0), ("transformer_blocks.0.attn.add_q_proj", 4, 8.0),
        ("transformer_blocks.1.ff.net.0.proj", 4, 8.0), ("transformer_blocks.1.ff.net.2", 4, 8.0),
        ("single_transformer_blocks.0.attn.to_v", 4, 8.0), ("single_transformer_blocks.1.proj_out", 2, 8.0),
        ("single_transformer_blocks.1.proj_mlp", 2, 1.0)]),
    "kohya": dict(format="kohya sd-scripts (lora_unet_ / lora_te1_, lora_down / lora_up / alpha)", seed=504,
                  modules=[
        ("double_blocks.0.img_attn.qkv", 4, 8.0), ("double_blocks.0.img_attn.proj", 4, 2.0),
        ("double_blocks.0.img_mlp.0", 4, None), ("double_blocks.0.txt_attn.qkv", 4, 4.0),
        ("double_blocks.0.txt_mlp.2", 4, 1.0), ("double_blocks.1.img_attn.qkv", 6, 3.0, "sparse"),
        ("double_blocks.1.txt_attn.proj", 4, 8.0), ("double_blocks.1.img_mlp.2", 4, 8.0),
        ("single_blocks.0.linear1", 4, 8.0), ("single_blocks.0.linear2", 4, 4.0),
        ("single_blocks.1.linear1", 8, 4.0, "sparse"), ("single_blocks.1.linear2", 4, None),
        ("te.0.self_attn.q_proj", 2, 4.0), ("te.0.self_attn.v_proj", 2, 1.0), ("te.0.mlp.fc1", 2, None),
        ("te.1.self_attn.out_proj", 2, 2.0), ("te.1.mlp.fc2", 2, 3.0)]),
    "kohya_comfy": dict(format="ComfyUI-saved kohya (diffusion_model. / text_encoders.clip_l.transformer.)", seed=505,
                        modules=[
        ("double_blocks.1.img_attn.qkv", 2, 1.0), ("double_blocks.1.txt_mlp.0", 2, None),
        ("double_blocks.0.txt_attn.proj", 2, 4.0), ("single_blocks.0.linear1", 2, 1.0),
        ("single_blocks.1.linear2", 2, 1.0), ("te.1.self_attn.k_proj", 2, 1.0), ("te.1.mlp.fc1", 2, None),
        # diffusers reads kohya CLIP q/k/v LoRAs only when some module is an out_proj (README.md): keep one here
        ("te.0.self_attn.out_proj", 2, 2.0)]),
    "bfl_peft": dict(format="BFL-named PEFT (diffusion_model. + lora_A / lora_B, optional alpha)", seed=506, modules=[
        ("double_blocks.0.img_attn.qkv", 4, 2.0), ("double_blocks.0.txt_attn.qkv", 4, None),
        ("double_blocks.0.img_mlp.2", 4, 8.0), ("double_blocks.1.img_attn.proj", 4, None),
        ("double_blocks.1.txt_mlp.0", 4, 2.0), ("single_blocks.0.linear1", 4, 8.0),
        ("single_blocks.0.linear2", 4, None), ("single_blocks.1.linear1", 4, None)]),
    "xlabs": dict(format="XLabs (processor.qkv_lora1 / proj_lora1 / qkv_lora2 / proj_lora2, down / up; no alpha)",
                  seed=507, modules=[
        *[(f"double_blocks.{i}.processor.{m}", 2, None) for i in range(2)
          for m in ["qkv_lora1", "proj_lora1", "qkv_lora2", "proj_lora2"]],
        ("single_blocks.0.processor.qkv_lora", 2, None), ("single_blocks.0.processor.proj_lora", 2, None)]),
}

# The `format` recorded in the case files: what a loader has to recognise.
KIND = {"peft_diffusers": "diffusers", "peft_diffusers_alpha": "diffusers", "peft_diffusers_meta": "diffusers",
        "kohya": "kohya", "kohya_comfy": "kohya_comfy", "bfl_peft": "bfl_peft", "xlabs": "xlabs"}

XLABS = {"qkv_lora1": "img_attn.qkv", "proj_lora1": "img_attn.proj", "qkv_lora2": "txt_attn.qkv",
         "proj_lora2": "txt_attn.proj"}

# (name, [(file, weight), ...]); adapter i is named a<i>.
CASES = [
    ("peft_diffusers", [("peft_diffusers", 1.0)]),
    ("peft_diffusers_alpha", [("peft_diffusers_alpha", 1.0)]),
    ("peft_diffusers_meta", [("peft_diffusers_meta", 1.0)]),
    ("kohya", [("kohya", 1.0)]),
    ("kohya_comfy", [("kohya_comfy", 1.0)]),
    ("bfl_peft", [("bfl_peft", 1.0)]),
    ("xlabs", [("xlabs", 1.0)]),
    ("kohya_scale07", [("kohya", 0.7)]),
    ("stack_kohya_xlabs", [("kohya", 0.8), ("xlabs", -0.5)]),
    ("stack_three", [("peft_diffusers", 1.0), ("kohya_comfy", 0.6), ("bfl_peft", 0.3)]),
    ("stack_alpha_meta_neg", [("peft_diffusers_alpha", 0.5), ("peft_diffusers_meta", -1.0)]),
]

PIPELINE_RUN = dict(prompt="a red fox in snow", height=32, width=48, steps=3, guidance=3.5, max_sequence_length=16)


def te_path(target, flat):
    """'te.0.self_attn.q_proj' -> the CLIP module name (without text_model. when transformers flattened CLIP)."""
    _, layer, module = target.split(".", 2)
    name = f"encoder.layers.{layer}.{module}"
    return name if flat else "text_model." + name


def module_sizes(target):
    """(in, out) of a LoRA target as the file stores it (fused for BFL names)."""
    if target.startswith("te."):
        return CLIP_SIZES[target.split(".", 2)[2]]
    if target.startswith(("double_blocks", "single_blocks")):
        if ".processor." in target:
            block, rest = target.split(".processor.")
            if block.startswith("double_blocks"):
                return bfl_module(f"{block}.{XLABS[rest]}")[0]
            return (D, 3 * D) if rest == "qkv_lora" else (D + MLP, D)
        return bfl_module(target)[0]
    return DIFFUSERS_SIZES[target]


def random_pair(g, target, rank, alpha, sparse):
    """lora_A (rank, in), lora_B (out, rank): a delta about 0.3 of the base weight's size after alpha / rank."""
    fan_in, fan_out = module_sizes(target)
    scale = (alpha if alpha is not None else rank) / rank
    a = torch.randn(rank, fan_in, generator=g) / fan_in ** 0.5
    b = torch.randn(fan_out, rank, generator=g) * (0.35 / scale / rank ** 0.5)
    if sparse:  # sd-scripts' split_qkv layout: rank/n rows of lora_down per split, lora_up block-diagonal
        rows = [s for _, s in bfl_module(target)[1]]
        n = len(rows)
        assert rank % n == 0
        mask = torch.zeros(fan_out, rank)
        r0 = 0
        for j, s in enumerate(rows):
            mask[r0:r0 + s, j * rank // n:(j + 1) * rank // n] = 1
            r0 += s
        b = b * mask * n ** 0.5
    return a.contiguous(), b.contiguous()


def kohya_name(target):
    if target.startswith("te."):
        _, layer, module = target.split(".", 2)
        return f"lora_te1_text_model_encoder_layers_{layer}_{module.replace('.', '_')}"
    return "lora_unet_" + target.replace(".", "_")


def comfy_name(target):
    if target.startswith("te."):
        _, layer, module = target.split(".", 2)
        return f"text_encoders.clip_l.transformer.text_model.encoder.layers.{layer}.{module}"
    return "diffusion_model." + target


def write_format(name, spec, out):
    """The file's tensors (f32; alpha as a 0-d f32 tensor) and metadata."""
    g = torch.Generator().manual_seed(spec["seed"])
    tensors, metadata = {}, {"format": "pt"}
    meta_cfg = None
    for entry in spec["modules"]:
        target, rank, alpha = entry[:3]
        sparse = len(entry) > 3
        a, b = random_pair(g, target, rank, alpha, sparse)
        alpha_t = None if alpha is None else torch.tensor(alpha, dtype=torch.float32)
        if name in ("peft_diffusers", "peft_diffusers_alpha", "peft_diffusers_meta"):
            if target.startswith("te."):
                _, layer, module = target.split(".", 2)
                key = f"text_encoder.text_model.encoder.layers.{layer}.{module}"
            else:
                key = "transformer." + target
            tensors[key + ".lora_A.weight"] = a
            tensors[key + ".lora_B.weight"] = b
            if name == "peft_diffusers_alpha":
                tensors[key + ".alpha"] = alpha_t
            if name == "peft_diffusers_meta":
                meta_cfg = meta_cfg or []
                meta_cfg.append((target, rank, alpha))
        elif name == "kohya":
            key = kohya_name(target)
            tensors[key + ".lora_down.weight"] = a
            tensors[key + ".lora_up.weight"] = b
            if alpha_t is not None:
                tensors[key + ".alpha"] = alpha_t
        elif name in ("kohya_comfy", "bfl_peft"):
            key = comfy_name(target)
            down, up = ("lora_down", "lora_up") if name == "kohya_comfy" else ("lora_A", "lora_B")
            tensors[f"{key}.{down}.weight"] = a
            tensors[f"{key}.{up}.weight"] = b
            if alpha_t is not None:
                tensors[key + ".alpha"] = alpha_t
        elif name == "xlabs":
            tensors[target + ".down.weight"] = a
            tensors[target + ".up.weight"] = b
        else:
            raise ValueError(name)
    if meta_cfg:
        # What FluxPipeline.save_lora_weights(..., transformer_lora_adapter_metadata=LoraConfig(...).to_dict())
        # stores: the config's fields prefixed with "transformer.", as JSON (indent 2, sorted keys) under
        # "lora_adapter_metadata". Here the fields that matter; the most common rank / alpha are r / lora_alpha, the
        # others go to rank_pattern / alpha_pattern under the full module name.
        ranks = [r for _, r, _ in meta_cfg]
        alphas = [al for _, _, al in meta_cfg]
        r = max(set(ranks), key=lambda v: (ranks.count(v), -v))
        lora_alpha = max(set(alphas), key=lambda v: (alphas.count(v), -v))
        config = {"r": r, "lora_alpha": lora_alpha,
                  "rank_pattern": {t: rr for t, rr, _ in meta_cfg if rr != r},
                  "alpha_pattern": {t: al for t, _, al in meta_cfg if al != lora_alpha},
                  "target_modules": sorted(t for t, _, _ in meta_cfg), "lora_dropout": 0.0, "bias": "none",
                  "init_lora_weights": True, "use_dora": False, "use_rslora": False, "peft_type": "LORA"}
        metadata["lora_adapter_metadata"] = json.dumps({f"transformer.{k}": v for k, v in config.items()},
                                                       indent=2, sort_keys=True)
    path = out / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def entry_scale(name, rank, alpha):
    """alpha / rank as diffusers applies it (checked against peft's scaling in check_deltas): XLabs has no alpha
    (scale 1); a module without alpha has scale 1 in every format (alpha defaults to the rank)."""
    if name == "xlabs" or alpha is None:
        return 1.0
    return alpha / rank


def expected_deltas(name, path, flat):
    """{(component, module): delta W (out, in)} at adapter weight 1, computed from the raw file by the rules in
    README.md, independently of diffusers: fused BFL / XLabs layers give (scale · lora_B @ lora_A) split by rows."""
    raw = load_file(str(path))
    out = {}
    for entry in FORMATS[name]["modules"]:
        target, rank, alpha = entry[:3]
        if name.startswith("peft_diffusers"):
            key = (f"text_encoder.text_model.encoder.layers.{target[3:].split('.', 1)[0]}."
                   f"{target.split('.', 2)[2]}" if target.startswith("te.") else "transformer." + target)
            a, b = raw[key + ".lora_A.weight"], raw[key + ".lora_B.weight"]
            if name == "peft_diffusers_alpha":
                alpha = raw[key + ".alpha"].item()
            elif name == "peft_diffusers":
                alpha = None
        elif name == "kohya":
            key = kohya_name(target)
            a, b = raw[key + ".lora_down.weight"], raw[key + ".lora_up.weight"]
            alpha = raw[key + ".alpha"].item() if key + ".alpha" in raw else None
        elif name in ("kohya_comfy", "bfl_peft"):
            key = comfy_name(target)
            down, up = ("lora_down", "lora_up") if name == "kohya_comfy" else ("lora_A", "lora_B")
            a, b = raw[f"{key}.{down}.weight"], raw[f"{key}.{up}.weight"]
            alpha = raw[key + ".alpha"].item() if key + ".alpha" in raw else None
        else:
            a, b = raw[target + ".down.weight"], raw[target + ".up.weight"]
        assert a.shape[0] == b.shape[1] == rank
        delta = entry_scale(name, rank, alpha) * (b.double() @ a.double())
        if target.startswith("te."):
            out[("text_encoder", te_path(target, flat))] = delta
            continue
        if name == "xlabs":
            block, rest = target.split(".processor.")
            i = int(block.split(".")[1])
            if block.startswith("double_blocks"):
                splits = bfl_module(f"{block}.{XLABS[rest]}")[1]
            elif rest == "qkv_lora":  # single-block qkv_lora: q, k, v only (not the MLP rows of linear1)
                splits = [(f"single_transformer_blocks.{i}.attn.to_{c}", D) for c in "qkv"]
            else:
                splits = [(f"single_transformer_blocks.{i}.proj_out", D)]
        elif target.startswith(("double_blocks", "single_blocks")):
            splits = bfl_module(target)[1]
        else:
            splits = [(target, delta.shape[0])]
        assert sum(s for _, s in splits) == delta.shape[0]
        for (module, _), part in zip(splits, torch.split(delta, [s for _, s in splits])):
            out[("transformer", module)] = part
    return out


def peft_deltas(pipe, adapter):
    """{(component, module): scaling · lora_B @ lora_A} of every module peft injected for `adapter`."""
    out = {}
    for component in ["transformer", "text_encoder"]:
        for module_name, module in getattr(pipe, component).named_modules():
            if isinstance(module, BaseTunerLayer) and adapter in getattr(module, "lora_A", {}):
                a = module.lora_A[adapter].weight.detach().double()
                b = module.lora_B[adapter].weight.detach().double()
                out[(component, module_name)] = module.scaling[adapter] * (b @ a)
    return out


@contextlib.contextmanager
def kohya_converter_for(inner_dim):
    """diffusers' _convert_kohya_flux_lora_to_diffusers with its single-block linear1 split (3072, 3072, 3072,
    12288) replaced by (D, D, D, 4D): the same source, compiled in the module's namespace; nothing else changes."""
    source = inspect.getsource(lora_conversion_utils._convert_kohya_flux_lora_to_diffusers)
    literal = "dims=[3072, 3072, 3072, 12288]"
    assert source.count(literal) == 1, "diffusers' kohya converter changed"
    source = source.replace(literal, f"dims=[{inner_dim}, {inner_dim}, {inner_dim}, {4 * inner_dim}]")
    namespace = dict(vars(lora_conversion_utils))
    exec(compile(source, lora_conversion_utils.__file__, "exec"), namespace)
    original = lora_pipeline._convert_kohya_flux_lora_to_diffusers
    lora_pipeline._convert_kohya_flux_lora_to_diffusers = namespace["_convert_kohya_flux_lora_to_diffusers"]
    try:
        yield
    finally:
        lora_pipeline._convert_kohya_flux_lora_to_diffusers = original


@contextlib.contextmanager
def collected():
    """Every WARNING+ record of diffusers / transformers / peft and every Python warning, in one list."""
    handler = Collect()
    loggers = [logging.getLogger(n) for n in ("diffusers", "transformers", "peft")]
    for logger in loggers:
        logger.addHandler(handler)
    problems = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield problems
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    problems.extend(handler.records + [f"{w.category.__name__}: {w.message}" for w in caught])


def load_source(name, path):
    """What load_lora_weights gets: the file's path, except bfl_peft (see the module docstring): its tensors under
    the ComfyUI kohya names (lora_A -> lora_down, lora_B -> lora_up)."""
    if name != "bfl_peft":
        return str(path)
    raw = load_file(str(path))
    return {k.replace(".lora_A.weight", ".lora_down.weight").replace(".lora_B.weight", ".lora_up.weight"): v
            for k, v in raw.items()}


def has_te(name):
    return any(e[0].startswith("te.") for e in FORMATS[name]["modules"])


def load_pipe():
    pipe = FluxPipeline.from_pretrained(PIPELINE, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_loras(pipe, loras, paths):
    """load_lora_weights for each (file, weight) as adapter a<i>, then set_adapters; returns the allowed-warning
    count. Any other warning stops the script."""
    allowed = reports = 0
    with collected() as problems, kohya_converter_for(pipe.transformer.inner_dim):
        for i, (name, _) in enumerate(loras):
            pipe.load_lora_weights(load_source(name, paths[name]), adapter_name=f"a{i}")
        pipe.set_adapters([f"a{i}" for i in range(len(loras))], adapter_weights=[w for _, w in loras])
    for p in problems:
        if NO_TE_WARNING in p or PEFT_SECOND_ADAPTER in p:
            allowed += 1
        elif "CLIPTextModel LOAD REPORT" in p and other_adapters_only(p, len(loras)):
            # transformers lists a second CLIP adapter's load as "MISSING" the earlier adapters' LoRA weights; they
            # are kept (the per-adapter delta check of each case proves it). Cosmetic; not an unmatched key.
            reports += 1
        else:
            raise AssertionError(f"diffusers / peft warned while loading {loras}: {p}")
    second = sum(1 for i, _ in enumerate(loras) if i > 0)  # peft's note on the transformer, per added adapter
    second += max(0, sum(has_te(n) for n, _ in loras) - 1)  # and on CLIP, per added CLIP adapter
    assert allowed == sum(not has_te(n) for n, _ in loras) + second, (allowed, loras, problems)
    assert reports == max(0, sum(has_te(n) for n, _ in loras) - 1), (reports, loras)
    return allowed


def other_adapters_only(report, n):
    """True when a transformers load report lists only MISSING keys of adapters a0 .. a<n-2> (none UNEXPECTED)."""
    rows = [line for line in report.splitlines() if line.count("|") >= 2 and "Status" not in line
            and not line.startswith("-")]
    return bool(rows) and all("| MISSING" in line and any(f".a{j}.weight" in line for j in range(n - 1))
                              for line in rows)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def transformer_inputs(config):
    g = torch.Generator().manual_seed(71)
    rows, cols, txt = 3, 4, 6
    img_ids = torch.zeros(rows * cols, 3)
    img_ids[:, 1] = torch.arange(rows).repeat_interleave(cols).float()
    img_ids[:, 2] = torch.arange(cols).repeat(rows).float()
    return {
        "hidden_states": torch.randn(1, rows * cols, config.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, txt, config.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=g),
        "timestep": torch.tensor([0.6]),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(txt, 3),
        "guidance": torch.tensor([3.5]),
    }


def run_transformer(pipe, inputs):
    with torch.no_grad():
        return pipe.transformer(**inputs, return_dict=False)[0].float().contiguous()


def run_pipeline(pipe, latents):
    r = PIPELINE_RUN
    with collected() as problems, torch.no_grad():
        image = pipe(prompt=r["prompt"], height=r["height"], width=r["width"], num_inference_steps=r["steps"],
                     guidance_scale=r["guidance"], max_sequence_length=r["max_sequence_length"], latents=latents,
                     output_type="pt").images
    assert not problems, problems
    return image.float().contiguous()


def clip_pooled(pipe):
    ids = pipe.tokenizer(PIPELINE_RUN["prompt"], padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids, output_hidden_states=False).pooler_output


def check_file(name, path, inputs, base_sample, base_pooled):
    """Checks 1-3 of the module docstring for one file loaded alone; returns its diagnostics."""
    pipe = load_pipe()
    flat = not hasattr(pipe.text_encoder, "text_model")
    load_loras(pipe, [(name, 1.0)], {name: path})
    got = peft_deltas(pipe, "a0")
    want = expected_deltas(name, path, flat)
    if set(got) != set(want):
        raise AssertionError(f"{name}: peft injected {sorted(set(got) - set(want))} unexpectedly and not "
                             f"{sorted(set(want) - set(got))}")
    worst = max(rel(got[k], want[k]) for k in want)
    assert worst < 1e-5, f"{name}: peft's delta differs from the documented rule by {worst:.2e}"
    change = rel(run_transformer(pipe, inputs), base_sample)
    assert change > 0.05, f"{name}: the LoRA hardly changes the transformer ({change:.3g})"
    diag = {"modules_injected": {c: sum(k[0] == c for k in got) for c in ("transformer", "text_encoder")},
            "delta_max_rel_err_vs_rule": float(f"{worst:.2e}"), "rel_change_sample_vs_base": round(change, 4)}
    if has_te(name):
        te_change = rel(clip_pooled(pipe), base_pooled)
        assert te_change > 0.05, f"{name}: the CLIP LoRA hardly changes the pooled output ({te_change:.3g})"
        diag["rel_change_clip_pooled_vs_base"] = round(te_change, 4)
    if name == "bfl_peft":  # the plain file: diffusers 0.42.1 ignores every key of it
        plain = load_pipe()
        with collected() as problems:
            plain.load_lora_weights(str(path), adapter_name="plain")
        injected = sum(isinstance(m, BaseTunerLayer) for c in ("transformer", "text_encoder")
                       for m in getattr(plain, c).modules())
        assert injected == 0, "diffusers now reads BFL-named PEFT keys: drop the rename in load_source"
        assert any("No LoRA keys associated to FluxTransformer2DModel" in p for p in problems), problems
        diag["plain_file_in_diffusers"] = "ignored: 0 modules injected; warns only 'No LoRA keys associated'"
    return diag


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    out = pathlib.Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "cases").mkdir(parents=True)

    paths = {name: write_format(name, spec, out) for name, spec in FORMATS.items()}
    base = load_pipe()
    inputs = transformer_inputs(base.transformer.config)
    save_file(inputs, str(out / "transformer_inputs.safetensors"),
              metadata={"format": "pt", "pipeline": "dev_tiny"})
    base_sample = run_transformer(base, inputs)
    base_pooled = clip_pooled(base)
    r = PIPELINE_RUN
    vae_scale = base.vae_scale_factor
    h, w = r["height"] // vae_scale // 2, r["width"] // vae_scale // 2
    latents = torch.randn(1, h * w, base.transformer.config.in_channels,
                          generator=torch.Generator().manual_seed(72)).contiguous()
    base_image = run_pipeline(base, latents)

    diagnostics = {}
    for name, path in paths.items():
        diagnostics[name] = check_file(name, path, inputs, base_sample, base_pooled)
        print(f"{name}: {path.stat().st_size} bytes, {json.dumps(diagnostics[name])}")

    for case, loras in CASES:
        pipe = load_pipe()
        load_loras(pipe, loras, paths)
        flat = not hasattr(pipe.text_encoder, "text_model")
        for i, (name, weight) in enumerate(loras):  # set_adapters: each adapter's delta times its weight
            got, want = peft_deltas(pipe, f"a{i}"), expected_deltas(name, paths[name], flat)
            assert set(got) == set(want) and max(rel(got[k], weight * want[k]) for k in want) < 1e-5, (case, name)
        sample = run_transformer(pipe, inputs)
        image = run_pipeline(pipe, latents)
        meta = {"format": "pt", "pipeline": "dev_tiny",
                "loras": json.dumps([{"file": f"{n}.safetensors", "format": KIND[n], "scale": s}
                                     for n, s in loras]),
                "adapter_weights": json.dumps([s for _, s in loras]),
                "rel_change_sample_vs_base": f"{rel(sample, base_sample):.4f}",
                "rel_change_image_vs_base": f"{rel(image, base_image):.4f}"}
        save_file({"sample": sample}, str(out / "cases" / f"{case}.transformer.safetensors"),
                  metadata=dict(meta, inputs="transformer_inputs.safetensors"))
        pipe_meta = dict(meta, prompt=r["prompt"], height=str(r["height"]), width=str(r["width"]),
                         num_inference_steps=str(r["steps"]), guidance_scale=str(r["guidance"]),
                         max_sequence_length=str(r["max_sequence_length"]))
        save_file({"latents": latents}, str(out / "cases" / f"{case}.inputs.safetensors"), metadata=pipe_meta)
        save_file({"image": image}, str(out / "cases" / f"{case}.image.safetensors"), metadata=pipe_meta)
        print(f"{case}: {loras}: sample changes {meta['rel_change_sample_vs_base']}, image "
              f"{meta['rel_change_image_vs_base']} vs no LoRA")
    (out / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(paths)} LoRA files, {len(CASES)} cases, {total / 1e3:.0f} kB in all")


if __name__ == "__main__":
    main()
