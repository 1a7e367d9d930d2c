"""Writes a full-size FLUX.1-dev-shaped diffusers pipeline folder with seeded random bf16 weights, for timing load and
first-image latency from a real checkpoint on disk (the GPU machine cannot download the real weights).

Components are built on the GPU with bench_diffusers.py's configs and saved with `save_pretrained` (bf16,
safetensors). The tokenizers are the demo model's small ones (their ids fit the full vocabularies), which is all a
timing needs. Usage: python3 save_random_pipeline.py OUT_DIR DEMO_MODEL_DIR
"""
import shutil
import sys
import time

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from bench_diffusers import CLIP_L, DEV, T5_XXL, VAE, build


def main():
    out, demo = sys.argv[1], sys.argv[2]
    t0 = time.time()
    parts = {
        "transformer": build(FluxTransformer2DModel, DEV, 1, kw=True),
        "text_encoder_2": build(T5EncoderModel, T5Config(**T5_XXL), 2),
        "text_encoder": build(CLIPTextModel, CLIPTextConfig(**CLIP_L), 3),
        "vae": build(AutoencoderKL, VAE, 4, kw=True),
    }
    for name, model in parts.items():
        model.save_pretrained(f"{out}/{name}", max_shard_size="10GB")
        del model
        torch.cuda.empty_cache()
    FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                    base_image_seq_len=256, max_image_seq_len=4096).save_pretrained(f"{out}/scheduler")
    for sub in ["tokenizer", "tokenizer_2"]:
        shutil.copytree(f"{demo}/{sub}", f"{out}/{sub}", dirs_exist_ok=True)
    shutil.copy(f"{demo}/model_index.json", f"{out}/model_index.json")
    print(f"wrote {out} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
