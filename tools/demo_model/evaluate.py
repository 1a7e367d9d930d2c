"""The demo model as a yardstick: prompt adherence, parity with diffusers, and the cost of approximations.

    python evaluate.py yardstick --model models/demo --bin .build/release/fluxserve \
        --variant exact --variant fbcache-0.05=cache_threshold:0.05 ... --out bench/results/DATE-demo-fbcache/README.md
    python evaluate.py parity --model models/demo --bin .build/release/fluxserve [--prompts 4]

Every image comes from `fluxserve eval pipeline` (the whole pipeline on the CPU, as `generate` runs it) on the
held-out prompts of scenes.py (attribute combinations that training never drew), one image each, at the model's
defaults (fluxserve.json: 128×128, 20 steps, guidance 3.5, 32 T5 tokens). Prompt i starts from the packed noise
torch.randn((1, C, 16, 16), generator=torch.Generator().manual_seed(i)), so diffusers can be given the same latents.
A variant is a name and extra metadata for eval pipeline (`cache_threshold:0.1`), or, after `|`, extra command-line
flags (for later speed-ups, such as a device or a weight format); the first variant is the reference that PSNR is
measured against. classify.py says how colour, shape, count, place and background are judged.
`--prompt-style outlined` gives the same held-out prompts in the outlined style of the demo LoRA ("an outlined red
circle": scenes.heldout_outlined()) and adds two columns: outlined (the largest object is a ring) and shape judged on
its filled outline; a LoRA is a variant's flag: `lora=|--lora models/demo-loras/outline.safetensors`.
"""
import argparse
import datetime
import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import classify  # noqa: E402
import scenes  # noqa: E402

METRICS = ["color", "shape", "count", "place", "background"]
OUTLINE_METRICS = ["outlined", "filled_shape"]  # with --prompt-style outlined


def defaults(model):
    return json.loads((pathlib.Path(model) / "fluxserve.json").read_text())["defaults"]


def latent_channels(model):
    return json.loads((pathlib.Path(model) / "vae" / "config.json").read_text())["latent_channels"]


def initial_latents(model, index):
    d = defaults(model)
    c, h, w = latent_channels(model), d["height"] // 8, d["width"] // 8
    z = torch.randn((1, c, h, w), generator=torch.Generator().manual_seed(index))
    return z.view(1, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(1, (h // 2) * (w // 2), c * 4)


def run_fluxserve(binary, model, prompt, latents, extra_metadata=None, flags=(), scratch=None):
    """→ (image (3,H,W) float32 in 0…1, skipped steps, seconds)."""
    d = defaults(model)
    metadata = {"prompt": prompt, "height": str(d["height"]), "width": str(d["width"]),
                "num_inference_steps": str(d["steps"]), "guidance_scale": str(d["guidance"]),
                "max_sequence_length": str(d["max_sequence_length"])}
    metadata.update(extra_metadata or {})
    scratch = pathlib.Path(scratch or tempfile.mkdtemp())
    inputs, output = scratch / "in.safetensors", scratch / "out.safetensors"
    save_file({"latents": latents.contiguous()}, str(inputs), metadata=metadata)
    start = time.time()
    subprocess.run([binary, "eval", "pipeline", "--model", str(model), "--inputs", str(inputs), "-o", str(output),
                    *flags], check=True, capture_output=True)
    seconds = time.time() - start
    from safetensors import safe_open
    with safe_open(str(output), "pt") as f:
        skipped = json.loads(f.metadata().get("skipped_steps", "[]"))
        image = f.get_tensor("image")[0].float()
    return image, skipped, seconds


def to_uint8(image):
    """(3,H,W) 0…1 → (H,W,3) uint8, rounded as a PNG would be stored."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def parse_variant(text):
    name, _, rest = text.partition("=")
    meta_text, _, flag_text = rest.partition("|")
    metadata = dict(item.split(":", 1) for item in meta_text.split(",") if item)
    return name, metadata, flag_text.split()


def yardstick(args):
    outlined = args.prompt_style == "outlined"
    prompts = (scenes.heldout_outlined() if outlined else scenes.heldout_prompts())[:args.prompts]
    metrics = METRICS + (OUTLINE_METRICS if outlined else [])
    variants = [parse_variant(v) for v in args.variant]
    scratch = pathlib.Path(tempfile.mkdtemp())
    rows, reference = [], None
    for name, metadata, flags in variants:
        images, scores, skipped, seconds = [], {m: [] for m in metrics}, [], []
        for i, (prompt, attrs) in enumerate(prompts):
            image, skip, t = run_fluxserve(args.bin, args.model, prompt, initial_latents(args.model, i), metadata,
                                           flags, scratch)
            images.append(image)
            skipped.append(len(skip))
            seconds.append(t)
            result = classify.score(to_uint8(image), attrs)
            for m in metrics:
                if result[m] is not None:
                    scores[m].append(result[m])
        stack = torch.stack(images)
        if reference is None:
            reference = stack
        mse = ((stack - reference) ** 2).flatten(1).mean(1)
        pooled = math.inf if mse.mean() == 0 else 10 * math.log10(1 / mse.mean().item())
        worst = math.inf if mse.max() == 0 else 10 * math.log10(1 / mse.max().item())
        row = {"variant": name, "psnr": pooled, "worst_psnr": worst,
               **{m: float(np.mean(v)) if v else math.nan for m, v in scores.items()},
               "place_n": len(scores["place"]), "skipped": float(np.mean(skipped)),
               "steps": defaults(args.model)["steps"], "seconds": float(np.median(seconds))}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.images and name == variants[0][0]:
            save_grid([to_uint8(im) for im in images[:args.grid]], args.images)
    if args.out:
        write_table(args, rows)


def save_grid(images, path, columns=8):
    from PIL import Image
    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / columns)
    out = np.full((rows * (h + 4) - 4, columns * (w + 4) - 4, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + 4):r * (h + 4) + h, c * (w + 4):c * (w + 4) + w] = im
    Image.fromarray(out).save(path, optimize=True)


def pct(v):
    return "–" if math.isnan(v) else f"{v:.0%}"


def fmt_psnr(v):
    return "exact" if math.isinf(v) else f"{v:.1f}"


def write_table(args, rows):
    d = defaults(args.model)
    outlined = args.prompt_style == "outlined"
    style = " in the outlined style (scenes.heldout_outlined())" if outlined else ""
    lines = [f"# Demo-model yardstick: {args.title}", "",
             f"{datetime.date.today()}, {args.prompts} held-out prompts (tools/demo_model/scenes.py){style}, one "
             f"image each, "
             f"{d['width']}×{d['height']}, {d['steps']} steps, guidance {d['guidance']}, "
             f"{d['max_sequence_length']} T5 tokens; CPU (`fluxserve eval pipeline`), model `{args.model}`.", "",
             "PSNR: of each variant's images against the first row's (pixels in 0…1), pooled over all images, and "
             "the worst single image. Colour / shape / count / place / background: share of prompts judged right by "
             "tools/demo_model/classify.py (place: the prompts that name one). Skipped: transformer steps skipped "
             "per image (First Block Cache), of the steps run. Seconds: median wall time of one `eval pipeline` "
             "process per image (loading included)." + (
                 " Outlined %: share of images whose largest object is a ring (classify.py: background-coloured "
                 "hole > OUTLINE_HOLE of its filled outline); shape (filled): shape judged on that filled outline."
                 if outlined else ""), "",
             "| variant | PSNR (dB) | worst PSNR | colour | shape | count | place | background | skipped | s/image |"
             + (" outlined % | shape (filled) |" if outlined else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if outlined else "")]
    for r in rows:
        lines.append(f"| {r['variant']} | {fmt_psnr(r['psnr'])} | {fmt_psnr(r['worst_psnr'])} | {r['color']:.0%} | "
                     f"{r['shape']:.0%} | {r['count']:.0%} | {pct(r['place'])} (of {r['place_n']}) | "
                     f"{r['background']:.0%} | {r['skipped']:.2f} / {r['steps']} | {r['seconds']:.2f} |"
                     + (f" {r['outlined']:.0%} | {r['filled_shape']:.0%} |" if outlined else ""))
    command = "python tools/demo_model/evaluate.py " + " ".join(sys.argv[1:])
    lines += ["", "Made by:", "", "```", command, "```", ""]
    if args.notes:
        lines += [pathlib.Path(args.notes).read_text()]
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text("\n".join(lines))
    print("wrote", args.out)


def parity(args):
    from diffusers import FluxPipeline
    pipe = FluxPipeline.from_pretrained(args.model, torch_dtype=torch.float32)
    d = defaults(args.model)
    worst = 0.0
    for i, (prompt, _) in enumerate(scenes.heldout_prompts()[:args.prompts]):
        latents = initial_latents(args.model, i)
        want = pipe(prompt, height=d["height"], width=d["width"], num_inference_steps=d["steps"],
                    guidance_scale=d["guidance"], max_sequence_length=d["max_sequence_length"], latents=latents,
                    output_type="pt").images[0].float()
        got, _, _ = run_fluxserve(args.bin, args.model, prompt, latents)
        error = (got - want).abs().max().item()
        worst = max(worst, error)
        print(f"{prompt!r}: max |fluxserve − diffusers| = {error:.2e}")
    print(f"worst over {args.prompts} prompts: {worst:.2e}")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    y = sub.add_parser("yardstick")
    p = sub.add_parser("parity")
    for s in (y, p):
        s.add_argument("--model", default=str(HERE.parents[1] / "models" / "demo"))
        s.add_argument("--bin", required=True)
    y.add_argument("--prompts", type=int, default=64)
    y.add_argument("--variant", action="append", required=True, help="NAME[=key:value,...][|flags]")
    y.add_argument("--out")
    y.add_argument("--title", default="")
    y.add_argument("--notes", help="a file whose text is appended to the table")
    y.add_argument("--images", help="PNG grid of the first variant's images")
    y.add_argument("--grid", type=int, default=64)
    y.add_argument("--prompt-style", choices=["plain", "outlined"], default="plain",
                   help="outlined: the held-out prompts in the demo LoRA's outlined style, and its columns")
    p.add_argument("--prompts", type=int, default=4)
    args = parser.parse_args()
    if args.command == "yardstick":
        yardstick(args)
    else:
        parity(args)


if __name__ == "__main__":
    main()
