"""Trained weights → the diffusers pipeline folder that ships as models/demo/ (run here, in the pinned environment).

    python assemble.py WEIGHTS_DIR OUT_DIR      # WEIGHTS_DIR: what train.py wrote (clip/t5/vae/transformer
                                                #   .safetensors, meta.json)
    python assemble.py --random OUT_DIR         # the same layout with untrained weights (for timing sizes)

The folder loads in diffusers' FluxPipeline unchanged (checked at the end) and in fluxserve through the same loader as
any checkpoint; weights are stored in bf16.
"""
import argparse
import json
import pathlib
import shutil

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
from safetensors.torch import load_file
from transformers import CLIPTokenizer, T5TokenizerFast

import config
from text import TOKENIZERS


def load_into(module, path):
    state = load_file(str(path))
    missing, unexpected = module.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    # T5 ties its input embedding to `shared`; either name may be the one saved.
    missing = [k for k in missing if k not in ("encoder.embed_tokens.weight", "shared.weight")]
    if missing or unexpected:
        raise SystemExit(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", nargs="?")
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--random", action="store_true")
    args = parser.parse_args()
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZERS / "tokenizer")
    tokenizer_2 = T5TokenizerFast.from_pretrained(TOKENIZERS / "tokenizer_2")
    clip, t5, vae, transformer = config.build(len(tokenizer), len(tokenizer_2), (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id))
    meta = {"scaling_factor": 1.0, "shift_factor": 0.0}
    if not args.random:
        weights = pathlib.Path(args.weights)
        meta = json.loads((weights / "meta.json").read_text())
        for name, module in [("clip", clip), ("t5", t5), ("vae", vae), ("transformer", transformer)]:
            load_into(module, weights / f"{name}.safetensors")
    vae.register_to_config(scaling_factor=meta["scaling_factor"], shift_factor=meta["shift_factor"])
    scheduler = FlowMatchEulerDiscreteScheduler(**config.SCHEDULER)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tokenizer, text_encoder_2=t5,
                        tokenizer_2=tokenizer_2, transformer=transformer)
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    pipe.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    for sub in ["tokenizer", "tokenizer_2"]:  # the tokenizer files as made, not re-serialised
        shutil.rmtree(out / sub)
        shutil.copytree(TOKENIZERS / sub, out / sub)
    (out / "fluxserve.json").write_text(json.dumps({"name": "demo", "defaults": config.DEFAULTS}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in
              [("clip", clip), ("t5", t5), ("vae", vae), ("transformer", transformer)]}
    print(f"wrote {out} ({total / 1e6:.2f} MB); parameters {params}")
    check = FluxPipeline.from_pretrained(out, torch_dtype=torch.float32)
    image = check("a red circle", height=128, width=128, num_inference_steps=2, max_sequence_length=32,
                  output_type="pt", generator=torch.Generator().manual_seed(0)).images
    print("diffusers loads it:", tuple(image.shape))


if __name__ == "__main__":
    main()
