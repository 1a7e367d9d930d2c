"""Trains the demo LoRA: the outlined style (scenes.py, outlined=True) on the demo model, on this CPU.

    python tools/demo_model/train_lora.py [--model models/demo] [--out models/demo-loras/outline.safetensors]
    python tools/demo_model/train_lora.py --smoke --out /tmp/outline-smoke.safetensors

1. models/demo loaded as a diffusers FluxPipeline, bf16 weights → f32, everything frozen.
2. The data: `--outlined` outlined scenes (scenes.scene(1001, i, outlined=True), "an outlined red circle", …) and
   `--plain` plain ones with plain captions (scenes.scene(1001, i) for the first of the same indices: the same
   layouts and colours, so the word is what tells them apart), held-out attribute tuples excluded; drawn, encoded
   once by the frozen VAE (latent means, then (z − shift_factor) · scaling_factor as FluxPipeline decodes them) and
   their captions encoded once by the frozen text encoders through FluxPipeline.encode_prompt (32 T5 tokens).
3. A PEFT LoRA (rank `--rank`, alpha = rank: scale 1) on the transformer's attention and MLP projections of every
   block (double blocks: to_q/k/v, to_out.0, add_q/k/v_proj, to_add_out, ff and ff_context; single blocks: to_q/k/v,
   proj_mlp, proj_out) and on each block's adaLN modulation (norm1.linear, norm1_context.linear, norm.linear: the
   path of CLIP's pooled text, where a style word acts on the whole picture), trained with train.py's objective: x_t = (1 − σ) x₀ + σ ε, the transformer predicts ε − x₀;
   σ logit-normal, shifted as FluxPipeline shifts for 64 image tokens (mu from config.py); guidance uniform in 1…6;
   packed latents, image ids (0, row, col), text ids zero. AdamW, warm-up then cosine; everything seeded.
4. Saved with FluxPipeline.save_lora_weights (diffusers/PEFT keys `transformer.….lora_A.weight`, f32, with the
   adapter config as metadata); the loss log (every `--log-every` steps) beside it as JSON.

Runs with one or two threads (`--threads`) under `nice`; `--smoke` runs every part in about a minute.
"""
import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import config  # noqa: E402
import scenes  # noqa: E402

START = time.time()
DATA_SEED = 1001
DOUBLE_TARGETS = ["attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
                  "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                  "ff_context.net.2", "norm1.linear", "norm1_context.linear"]
SINGLE_TARGETS = ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out", "norm.linear"]
CLIP_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def log(message):
    print(f"[{time.time() - START:7.1f}s] {message}", flush=True)


def target_modules(transformer):
    """Full names of the adapted linear layers (the top-level proj_out and norm_out stay as they are)."""
    names = [f"transformer_blocks.{i}.{t}" for i in range(len(transformer.transformer_blocks)) for t in DOUBLE_TARGETS]
    names += [f"single_transformer_blocks.{i}.{t}" for i in range(len(transformer.single_transformer_blocks))
              for t in SINGLE_TARGETS]
    modules = dict(transformer.named_modules())
    assert all(isinstance(modules[n], torch.nn.Linear) for n in names)
    return names


def pack_latents(z):
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h, w):
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3)


@torch.no_grad()
def make_data(pipe, n_outlined, n_plain, batch=32):
    """→ latents (N,C,h,w) normalised, T5 states (N,32,D), pooled (N,D), CLIP ids (N,77), outlined (N,) bool,
    captions."""
    exclude = scenes.heldout_attributes()
    drawn = [scenes.scene(DATA_SEED, i, exclude, outlined=True) for i in range(n_outlined)]
    drawn += [scenes.scene(DATA_SEED, i, exclude) for i in range(n_plain)]
    vae = pipe.vae
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    latents, states, pooled, clip_ids = [], [], [], []
    for i in range(0, len(drawn), batch):
        part = drawn[i:i + batch]
        x = scenes.render(scenes.pack(part), config.RESOLUTION)
        latents.append((vae.encode(x).latent_dist.mean - shift) * scale)
        s, p, _ = pipe.encode_prompt([d.caption for d in part], prompt_2=None, device=torch.device("cpu"),
                                     num_images_per_prompt=1, max_sequence_length=config.DEFAULTS["max_sequence_length"])
        states.append(s)
        pooled.append(p)
        clip_ids.append(pipe.tokenizer([d.caption for d in part], padding="max_length",
                                       max_length=pipe.tokenizer_max_length, truncation=True,
                                       return_tensors="pt").input_ids)
    return (torch.cat(latents), torch.cat(states), torch.cat(pooled), torch.cat(clip_ids),
            torch.tensor([d.outlined for d in drawn]), [d.caption for d in drawn])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(HERE.parents[1] / "models" / "demo"))
    parser.add_argument("--out", default=str(HERE.parents[1] / "models" / "demo-loras" / "outline.safetensors"))
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--outlined", type=int, default=768, help="outlined scenes in the data")
    parser.add_argument("--plain", type=int, default=384, help="plain scenes (plain captions) in the data")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--max-minutes", type=float, default=30,
                        help="safety stop: save what there is after this long of training (logged as such)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip", type=int, default=1, help="1: a LoRA on CLIP's layers too (0: transformer only)")
    parser.add_argument("--smoke", action="store_true", help="every part, tiny (about a minute)")
    args = parser.parse_args()
    if args.smoke:
        args.outlined, args.plain, args.steps, args.batch, args.log_every, args.warmup = 32, 16, 30, 8, 5, 5
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from diffusers import FluxPipeline
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    pipe = FluxPipeline.from_pretrained(args.model, torch_dtype=torch.float32)
    for m in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        m.requires_grad_(False)
        m.eval()
    log(f"loaded {args.model} (f32, frozen); torch {torch.__version__}, {torch.get_num_threads()} threads")

    t = time.time()
    latents, states, pooled, clip_ids, outlined, captions = make_data(pipe, args.outlined, args.plain)
    data_s = time.time() - t
    log(f"data: {len(captions)} scenes ({int(outlined.sum())} outlined) encoded in {data_s:.1f} s, latents "
        f"{tuple(latents.shape)} (mean {latents.mean():.3f}, std {latents.std():.3f}); e.g. '{captions[0]}' / "
        f"'{captions[args.outlined]}'")

    transformer = pipe.transformer
    targets = target_modules(transformer)
    lora = LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=targets)
    transformer.add_adapter(lora)
    clip = pipe.text_encoder
    clip_lora = None
    if args.clip:  # CLIP's pooled output feeds every block's modulation: let the trigger word move it
        clip_lora = LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                               target_modules=CLIP_TARGETS)
        inject_adapter_in_model(clip_lora, clip)  # (transformers' add_adapter wants peft ≥ 0.22)
        clip.train()
    params = [p for m in (transformer, clip) for p in m.parameters() if p.requires_grad]
    log(f"LoRA rank {args.rank} on {len(targets)} transformer layers" + (
        f" and CLIP's {', '.join(CLIP_TARGETS)}" if args.clip else "")
        + f": {sum(p.numel() for p in params):,} parameters")
    transformer.train()
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)

    n, c, h, w = latents.shape
    img_ids, txt_ids = image_ids(h, w), torch.zeros(states.shape[1], 3)
    mu = config.mu((h // 2) * (w // 2))
    generator = torch.Generator().manual_seed(args.seed + 2)
    losses, window, window_kind = [], [], []
    t0 = time.time()
    stopped = None
    for step in range(args.steps):
        if time.time() - t0 > 60 * args.max_minutes:
            stopped = step
            log(f"stopped at step {step} of {args.steps}: --max-minutes {args.max_minutes} reached")
            break
        scale = min(1.0, (step + 1) / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = args.lr * scale
        idx = torch.randint(n, (args.batch,), generator=generator)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=generator)
        u = torch.sigmoid(torch.randn(args.batch, generator=generator)).clamp(1e-5, 1 - 1e-5)
        sigma = math.exp(mu) / (math.exp(mu) + (1 / u - 1))
        guidance = 1 + 5 * torch.rand(args.batch, generator=generator)
        s = sigma[:, None, None, None]
        pred = transformer(hidden_states=pack_latents((1 - s) * x0 + s * noise), encoder_hidden_states=states[idx],
                           pooled_projections=clip(clip_ids[idx]).pooler_output if args.clip else pooled[idx],
                           timestep=sigma, img_ids=img_ids, txt_ids=txt_ids,
                           guidance=guidance, return_dict=False)[0]
        per_sample = ((pred - pack_latents(noise - x0)) ** 2).mean((1, 2))
        loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        window.append(loss.item())
        window_kind.append((per_sample.detach(), outlined[idx]))
        if (step + 1) % args.log_every == 0 or step == args.steps - 1:
            ps = torch.cat([p for p, _ in window_kind])
            kind = torch.cat([k for _, k in window_kind])
            entry = {"step": step + 1, "seconds": round(time.time() - t0, 1), "loss": float(np.mean(window)),
                     "loss_outlined": ps[kind].mean().item() if kind.any() else None,
                     "loss_plain": ps[~kind].mean().item() if (~kind).any() else None,
                     "grad": round(norm.item(), 3), "lr": args.lr * scale}
            losses.append(entry)
            log(f"step {step + 1}: loss {entry['loss']:.4f} (outlined {entry['loss_outlined'] or math.nan:.4f}, "
                f"plain {entry['loss_plain'] or math.nan:.4f}) grad {norm.item():.3f} lr {args.lr * scale:.2e} "
                f"({(time.time() - t0) / (step + 1) * 1e3:.0f} ms/step)")
            window, window_kind = [], []
    train_s = time.time() - t0
    steps_done = stopped if stopped is not None else args.steps
    log(f"trained {steps_done} steps of {args.batch} in {train_s:.1f} s")

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    transformer.eval()
    clip.eval()
    layers = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(transformer).items()}
    extra = {}
    if args.clip:
        extra = {"text_encoder_lora_layers": {k.replace(".default", ""): v.detach().contiguous()
                                              for k, v in clip.state_dict().items() if ".lora_" in k},
                 "text_encoder_lora_adapter_metadata": clip_lora.to_dict()}
    FluxPipeline.save_lora_weights(str(out.parent), transformer_lora_layers=layers, weight_name=out.name,
                                   transformer_lora_adapter_metadata=lora.to_dict(), **extra)
    meta = {"model": args.model, "rank": args.rank, "alpha": args.rank, "layers": len(targets), "clip": bool(args.clip),
            "parameters": sum(p.numel() for p in params), "outlined_scenes": args.outlined,
            "plain_scenes": args.plain, "data_seed": DATA_SEED, "steps": args.steps,
            "steps_done": steps_done, "batch": args.batch,
            "lr": args.lr, "seed": args.seed, "threads": args.threads, "data_seconds": round(data_s, 1),
            "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - START, 1),
            "bytes": out.stat().st_size, "torch": torch.__version__, "losses": losses}
    out.with_suffix(".train.json").write_text(json.dumps(meta, indent=1) + "\n")
    log(f"wrote {out} ({out.stat().st_size:,} bytes) and {out.with_suffix('.train.json').name}; "
        f"total {time.time() - START:.1f} s")


if __name__ == "__main__":
    main()
