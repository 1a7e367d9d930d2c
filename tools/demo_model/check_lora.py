"""The demo LoRA judged in diffusers itself (no fluxserve): adherence with and without it.

    python tools/demo_model/check_lora.py --lora models/demo-loras/outline.safetensors --prompts 32 --out RESULT.json

models/demo in diffusers' FluxPipeline (f32, CPU); the first N held-out prompts of scenes.py twice: in the outlined
style (scenes.heldout_outlined(): "an outlined red circle", …) and plain (scenes.heldout_prompts()), each without
and with the LoRA (load_lora_weights, scale 1), at the model's defaults (fluxserve.json) from the yardstick's
latents (evaluate.initial_latents: prompt i starts from seed i). Scored by classify.py: colour, shape, count, place,
background as the yardstick does, and outlined (the largest object is a ring) and filled_shape (its shape judged on
its filled outline).
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import classify  # noqa: E402
import evaluate  # noqa: E402
import scenes  # noqa: E402

METRICS = ["color", "shape", "count", "place", "background", "outlined", "filled_shape"]


def generate(pipe, model, prompts, batch):
    d = evaluate.defaults(model)
    images = []
    for start in range(0, len(prompts), batch):
        part = prompts[start:start + batch]
        latents = torch.cat([evaluate.initial_latents(model, start + i) for i in range(len(part))])
        out = pipe([p for p, _ in part], height=d["height"], width=d["width"], num_inference_steps=d["steps"],
                   guidance_scale=d["guidance"], max_sequence_length=d["max_sequence_length"], latents=latents,
                   output_type="pt").images.float()
        images += [evaluate.to_uint8(im) for im in out]
    return images


def tally(images, prompts):
    scores = {m: [] for m in METRICS}
    for image, (_, attrs) in zip(images, prompts):
        r = classify.score(image, attrs)
        for m in METRICS:
            if r[m] is not None:
                scores[m].append(bool(r[m]))
    return {m: {"right": int(sum(v)), "of": len(v)} for m, v in scores.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(HERE.parents[1] / "models" / "demo"))
    parser.add_argument("--lora", default=str(HERE.parents[1] / "models" / "demo-loras" / "outline.safetensors"))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="JSON with every count")
    parser.add_argument("--images", help="folder for PNG grids (one per style and LoRA setting)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import FluxPipeline
    pipe = FluxPipeline.from_pretrained(args.model, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    sets = {"outlined": scenes.heldout_outlined()[:args.prompts], "plain": scenes.heldout_prompts()[:args.prompts]}
    results = {"model": args.model, "lora": args.lora, "prompts": args.prompts, "defaults": evaluate.defaults(args.model),
               "runs": []}
    for with_lora in (False, True):
        if with_lora:
            pipe.load_lora_weights(args.lora, adapter_name="outline")
        for style, prompts in sets.items():
            t = time.time()
            images = generate(pipe, args.model, prompts, args.batch)
            run = {"lora": with_lora, "style": style, "seconds": round(time.time() - t, 1),
                   "scores": tally(images, prompts)}
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
            if args.images:
                folder = pathlib.Path(args.images)
                folder.mkdir(parents=True, exist_ok=True)
                evaluate.save_grid(images, folder / f"{style}-{'lora' if with_lora else 'base'}.png")
    for run in results["runs"]:
        s = run["scores"]
        print(f"{'with' if run['lora'] else 'without':7} LoRA, {run['style']:8} prompts: " + ", ".join(
            f"{m} {s[m]['right']}/{s[m]['of']}" for m in METRICS))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
