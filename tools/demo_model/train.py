"""Trains the demo model from nothing, in one run that fits one GPU call (~8 minutes on an H100):

1. the autoencoder (diffusers AutoencoderKL, 8 latent channels, ×8) on freshly drawn scenes, L1 + L2 + a light KL;
2. the data set: N captioned scenes (scenes.py, held-out prompts excluded), drawn and encoded once to latent means,
   normalised by their own mean and standard deviation (→ the VAE's shift_factor and scaling_factor);
3. the text encoders (transformers CLIPTextModel and T5EncoderModel) and the FluxTransformer2DModel together, from
   scratch, with FLUX's rectified-flow objective: x_t = (1 − σ) x₀ + σ ε, the model predicts ε − x₀; σ is a
   logit-normal draw shifted as FluxPipeline shifts its schedule for 64 image tokens (mu ≈ 0.47); the guidance
   embedding (dev layout) gets a random guidance in 1…6, so the model learns to draw well whatever it is given
   (there is no teacher to distil classifier-free guidance from). Inputs exactly as FluxPipeline builds them: CLIP
   pooled output of 77 padded ids (up to the longest caption's end token suffice: the mask is causal and pooling
   takes the first end token),
   T5 states of max_sequence_length ids with no attention mask, text ids zero, image ids (0, row, col).
4. a quick check on the GPU: the held-out prompts, 20 Euler steps, scored by classify.py, for the EMA weights and
   the raw ones; the better set is saved.

Every phase runs to a wall-clock deadline. Writes to --out: {clip,t5,vae,transformer}.safetensors (bf16),
meta.json (VAE scale/shift, config, losses, scores), train.log, samples.png. assemble.py turns them into the pipeline
folder. `--smoke` runs every phase for a few seconds on the CPU.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scenes  # noqa: E402
from text import Tokenizers  # noqa: E402

START = time.time()
LOG = []  # lines so far
# How the text encoders and transformer run: bf16 autocast or not, and which SDPA kernels may serve. A child process
# tries each in turn on a few steps (a CUDA error ends a process) while the autoencoder trains; the first that
# works is used.
SETTINGS = {"autocast": True}
CANDIDATES = ["bf16", "bf16-no-cudnn-sdpa", "bf16-math-sdpa", "fp32-math-sdpa"]


def apply_settings(name):
    SETTINGS["autocast"] = name.startswith("bf16")
    if name != "bf16":
        torch.backends.cuda.enable_cudnn_sdp(False)
    if name.endswith("math-sdpa"):
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)


LOG_FILE = []


def log(message):
    line = f"[{time.time() - START:6.1f}s] {message}"
    print(line, flush=True)
    LOG.append(line)
    if LOG_FILE:
        with open(LOG_FILE[0], "a") as f:
            f.write(line + "\n")


# ---- data: scenes, captions and ids, made by worker processes while the autoencoder trains -----------------------

_worker = {}


def _init_worker(t5_length):
    _worker["tok"] = Tokenizers()
    _worker["exclude"] = scenes.heldout_attributes()
    _worker["t5_length"] = t5_length


def _make_chunk(task):
    seed, start, count = task
    batch = [scenes.scene(seed, i, _worker["exclude"]) for i in range(start, start + count)]
    captions = [s.caption for s in batch]
    tok = _worker["tok"]
    packed = {k: v.numpy() for k, v in scenes.pack(batch).items()}
    return packed, tok.clip_ids(captions).astype(np.int32), \
        tok.t5_ids(captions, _worker["t5_length"]).astype(np.int32), captions


# ---- phase 1: the autoencoder -------------------------------------------------------------------------------------

def train_vae(vae, device, deadline, batch, lr):
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(1)
    step, losses, t0 = 0, [], time.time()
    drawn = 8 * batch  # scenes drawn per call: drawing is bound by launches and syncs, not by pixels
    while time.time() < deadline:
        profile = step in (40, 60) and device.type == "cuda"
        if profile:
            torch.cuda.synchronize()
            t_render = time.time()
        if step % 8 == 0:
            with torch.no_grad():
                pictures = scenes.render(scenes.random_params(drawn, generator, device))
        x = pictures[(step % 8) * batch:(step % 8 + 1) * batch]
        if profile:
            torch.cuda.synchronize()
            t_render, t_step = time.time() - t_render, time.time()
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 200)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
            y = vae.decode(posterior.sample()).sample
        y = y.float()
        recon = (y - x).abs().mean() + 2 * ((y - x) ** 2).mean()
        kl = 0.5 * (posterior.mean.float() ** 2 + posterior.var.float() - 1 - posterior.logvar.float()).mean()
        loss = recon + 1e-5 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if profile:
            torch.cuda.synchronize()
            log(f"vae step {step}: drawing {t_render * 1e3:.1f} ms, training step {(time.time() - t_step) * 1e3:.1f} ms")
        losses.append((recon.item(), kl.item()) if step % 25 == 0 else None)
        if step % 250 == 0:
            log(f"vae step {step}: recon {recon.item():.4f} kl {kl.item():.2f} "
                f"({step / max(time.time() - t0, 1e-9):.1f} steps/s)")
        step += 1
    log(f"vae done: {step} steps, last recon {recon.item():.4f}")
    vae.eval()
    return step, [l for l in losses if l]


@torch.no_grad()
def encode_dataset(vae, chunks, device, batch):
    """Draws every scene and keeps its latent mean (N, C, h, w), bf16 on the device."""
    params = {k: torch.from_numpy(np.concatenate([c[0][k] for c in chunks])) for k in chunks[0][0]}
    n = params["bg"].shape[0]
    out = []
    for i in range(0, n, batch):
        part = {k: v[i:i + batch].to(device) for k, v in params.items()}
        x = scenes.render(part)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(vae.encode(x).latent_dist.mean.float())
    latents = torch.cat(out)
    return latents


# ---- phase 3: text encoders + transformer --------------------------------------------------------------------------

def pack_latents(z):
    """(B, C, h, w) → (B, h/2·w/2, 4C), FluxPipeline's _pack_latents."""
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h, w, device):
    ids = torch.zeros(h // 2, w // 2, 3, device=device)
    ids[..., 1] = torch.arange(h // 2, device=device)[:, None]
    ids[..., 2] = torch.arange(w // 2, device=device)[None, :]
    return ids.reshape(-1, 3)


def shifted(sigma, mu):
    """FLUX's time shift (exponential): e^mu / (e^mu + (1/σ − 1))."""
    return math.exp(mu) / (math.exp(mu) + (1 / sigma - 1))


def zero_init(transformer):
    """adaLN-Zero (as DiT and BFL's training): modulation and output projections start at zero."""
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and (name.endswith("norm1.linear") or name.endswith(
                "norm1_context.linear") or name.endswith("norm.linear") or name == "norm_out.linear"
                or name == "proj_out"):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)


class EMA:
    def __init__(self, modules, decay):
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone().float() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def update(self, step):
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.float() for p in self.params], 1 - d)

    @torch.no_grad()
    def swap(self):
        for p, s in zip(self.params, self.shadow):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


def encode_text(clip, t5, clip_ids, t5_ids):
    pooled = clip(input_ids=clip_ids).pooler_output
    states = t5(input_ids=t5_ids).last_hidden_state
    return pooled, states


def train_flux(models, data, device, deadline, batch, lr, mu, log_every, max_steps=None):
    clip, t5, transformer = models
    latents, clip_ids, t5_ids = data
    n, c, h, w = latents.shape
    img_ids = image_ids(h, w, device)
    txt_ids = torch.zeros(t5_ids.shape[1], 3, device=device)
    params = [p for m in models for p in m.parameters()]
    decay, no_decay = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.99), fused=device.type == "cuda")
    ema = EMA(models, 0.999)
    for m in models:
        m.train()
    t0, step, losses, window = time.time(), 0, [], []
    span = deadline - t0
    generator = torch.Generator(device=device).manual_seed(2)
    # Batch: steps 20-80 time `batch`, half and twice it; from then on the largest batch whose step costs under
    # 1.4 times the step of half of it (where launch overhead, not the GPU, sets the pace, a larger batch is free).
    full, timing = batch, {}
    while time.time() < deadline and (max_steps is None or step < max_steps):
        if step in (20, 40, 60, 80) and device.type == "cuda":
            torch.cuda.synchronize()
            timing[step] = time.time()
            batch = {20: full // 2, 40: full, 60: 2 * full}.get(step, full)
            if step == 80:
                per = {full // 2: timing[40] - timing[20], full: timing[60] - timing[40],
                       2 * full: timing[80] - timing[60]}
                batch = full // 2
                for b in (full, 2 * full):
                    if per[b] < 1.4 * per[b // 2]:
                        batch = b
                    else:
                        break
                log("step time: " + ", ".join(f"{per[b] / 20 * 1e3:.1f} ms at batch {b}" for b in sorted(per))
                    + f"; batch {batch} from here")
        frac = (time.time() - t0) / span
        scale = min(1.0, (step + 1) / 300) * (1.0 if frac < 0.6 else 0.1 + 0.9 * 0.5 * (1 + math.cos(
            math.pi * (frac - 0.6) / 0.4)))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        idx = torch.randint(n, (batch,), device=device, generator=generator)
        x0 = latents[idx].float()
        noise = torch.randn(x0.shape, device=device, generator=generator)
        u = torch.sigmoid(torch.randn(batch, device=device, generator=generator))
        sigma = math.exp(mu) / (math.exp(mu) + (1 / u.clamp(1e-5, 1 - 1e-5) - 1))
        s = sigma[:, None, None, None]
        xt = pack_latents((1 - s) * x0 + s * noise)
        target = pack_latents(noise - x0)
        guidance = 1 + 5 * torch.rand(batch, device=device, generator=generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and SETTINGS["autocast"]):
            pooled, states = encode_text(clip, t5, clip_ids[idx], t5_ids[idx])
            pred = transformer(hidden_states=xt, encoder_hidden_states=states, pooled_projections=pooled,
                               timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, guidance=guidance,
                               return_dict=False)[0]
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        window.append(loss.detach())
        if step % log_every == 0:
            mean = torch.stack(window).mean().item()
            window = []
            losses.append((step, round(time.time() - t0, 1), mean))
            log(f"flux step {step}: loss {mean:.4f} grad {norm.item():.2f} lr {lr * scale:.2e} "
                f"({step / max(time.time() - t0, 1e-9):.1f} steps/s, {frac:.0%})")
        step += 1
    log(f"flux done: {step} steps of batch {batch}")
    for m in models:
        m.eval()
    return (step, batch), losses, ema


@torch.no_grad()
def sample(models, vae, tok, prompts, device, steps, mu, shift, scale, seed, t5_length, guidance=3.5):
    """FluxPipeline's loop: seeded noise, Euler over the shifted schedule, unpack, decode → uint8 (B,H,W,3)."""
    clip, t5, transformer = models
    b = len(prompts)
    clip_ids = torch.from_numpy(tok.clip_ids(prompts)).to(device)
    t5_ids = torch.from_numpy(tok.t5_ids(prompts, t5_length)).to(device)
    c = vae.config.latent_channels
    h = w = scenes_resolution() // 8
    g = torch.Generator(device=device).manual_seed(seed)
    x = pack_latents(torch.randn(b, c, h, w, device=device, generator=g))
    sigmas = [shifted(s, mu) for s in np.linspace(1.0, 1 / steps, steps)] + [0.0]
    img_ids, txt_ids = image_ids(h, w, device), torch.zeros(t5_length, 3, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and SETTINGS["autocast"]):
        pooled, states = encode_text(clip, t5, clip_ids, t5_ids)
        for i in range(steps):
            v = transformer(hidden_states=x, encoder_hidden_states=states, pooled_projections=pooled,
                            timestep=torch.full((b,), sigmas[i], device=device), img_ids=img_ids, txt_ids=txt_ids,
                            guidance=torch.full((b,), guidance, device=device), return_dict=False)[0].float()
            x = x + (sigmas[i + 1] - sigmas[i]) * v
        z = x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        images = vae.decode(z / scale + shift).sample.float()
    return scenes.to_uint8(images)


def scenes_resolution():
    import config
    return config.RESOLUTION


def evaluate(images, prompts):
    import classify
    totals = {"color": 0, "shape": 0, "count": 0, "background": 0}
    places = [0, 0]
    for image, (_, attrs) in zip(images, prompts):
        r = classify.score(image, attrs)
        for k in totals:
            totals[k] += r[k]
        if r["place"] is not None:
            places[0] += r["place"]
            places[1] += 1
    out = {k: v / len(prompts) for k, v in totals.items()}
    out["place"] = places[0] / max(places[1], 1)
    return out


def grid(images, columns):
    rows = math.ceil(len(images) / columns)
    h, w = images.shape[1:3]
    out = np.full((rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im
    return out


def preflight(args):
    """A few training steps (batch ½× and 2×) and a short sampling on made-up data, with settings `args.preflight`."""
    import config
    apply_settings(args.preflight)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tok = Tokenizers()
    clip, t5, vae, transformer = config.build(
        tok.clip.get_vocab_size(), tok.t5.get_piece_size(),
        (tok.clip.token_to_id("<|startoftext|>"), tok.clip_pad, tok.clip_pad))
    zero_init(transformer)
    for m in (clip, t5, vae, transformer):
        m.to(device)
    n, c = 4096, config.VAE["latent_channels"]
    latents = torch.randn(n, c, config.RESOLUTION // 8, config.RESOLUTION // 8, device=device).to(torch.bfloat16)
    clip_ids = torch.randint(0, tok.clip.get_vocab_size(), (n, 35), device=device)
    clip_ids[:, -1] = tok.clip_pad
    t5_ids = torch.randint(0, tok.t5.get_piece_size(), (n, 32), device=device)
    models = (clip, t5, transformer)
    for b in (2 * args.batch, args.batch // 2):
        _, losses, _ = train_flux(models, (latents, clip_ids, t5_ids), device, time.time() + 1e9, b, args.lr, 0.47, 1,
                                  max_steps=3)
        if device.type == "cuda":
            torch.cuda.synchronize()
    images = sample(models, vae, tok, ["a red circle", "two blue stars"], device, 2, 0.47, 0.0, 1.0, 0, 32)
    print("PREFLIGHT OK", losses[-1], images.shape, flush=True)


def run_preflights(args, chosen):
    for name in CANDIDATES:
        env = dict(os.environ)
        if name == "bf16":  # report the failing kernel where it fails
            env["CUDA_LAUNCH_BLOCKING"] = "1"
        try:
            r = subprocess.run([sys.executable, __file__, "--out", str(args.out), "--preflight", name, "--batch",
                                str(args.batch)], capture_output=True, text=True, env=env, timeout=150)
            ok, detail = r.returncode == 0 and "PREFLIGHT OK" in r.stdout, r.stderr.strip().splitlines()[-25:]
        except subprocess.TimeoutExpired:
            ok, detail = False, ["timed out"]
        log(f"preflight {name}: " + ("ok" if ok else "failed:\n    " + "\n    ".join(detail)))
        if ok:
            chosen.append(name)
            return


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--budget", type=float, default=460, help="seconds for the whole run")
    parser.add_argument("--vae-seconds", type=float, default=100)
    parser.add_argument("--scenes", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--vae-batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every phase")
    parser.add_argument("--preflight", help="(internal) try these settings and exit")
    args = parser.parse_args()
    if args.preflight:
        return preflight(args)
    import config
    if args.smoke:
        args.budget, args.vae_seconds, args.scenes, args.batch, args.vae_batch, args.workers = 75, 10, 64, 8, 4, 2
    args.out.mkdir(parents=True, exist_ok=True)
    LOG_FILE.append(args.out / "train.log")
    (args.out / "train.log").write_text("")
    t5_length = config.DEFAULTS["max_sequence_length"]

    # Workers fork before CUDA starts.
    pool = mp.get_context("fork").Pool(args.workers, _init_worker, (t5_length,))
    chunk = 2000 if not args.smoke else 128
    tasks = [(1, i, min(chunk, args.scenes - i)) for i in range(0, args.scenes, chunk)]
    pending = pool.map_async(_make_chunk, tasks)

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    tok = Tokenizers()
    clip, t5, vae, transformer = config.build(
        tok.clip.get_vocab_size(), tok.t5.get_piece_size(),
        (tok.clip.token_to_id("<|startoftext|>"), tok.clip_pad, tok.clip_pad))
    zero_init(transformer)
    for m in (clip, t5, vae, transformer):
        m.to(device)
    log(f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}; torch {torch.__version__}; "
        f"parameters: " + ", ".join(f"{n} {sum(p.numel() for p in m.parameters()) / 1e6:.2f}M" for n, m in
                                    [("clip", clip), ("t5", t5), ("vae", vae), ("transformer", transformer)]))

    chosen = []
    checker = threading.Thread(target=run_preflights, args=(args, chosen), daemon=True)
    if device.type == "cuda":
        checker.start()
    vae_steps, vae_losses = train_vae(vae, device, START + args.vae_seconds, args.vae_batch, 1e-3)
    for p in vae.parameters():
        p.requires_grad_(False)
    from safetensors.torch import save_file
    save_file({k: v.detach().to(torch.bfloat16).cpu().contiguous() for k, v in vae.state_dict().items()},
              str(args.out / "vae.safetensors"))

    chunks = pending.get()
    pool.close()
    log(f"scenes ready: {sum(len(c[3]) for c in chunks)}")
    raw = encode_dataset(vae, chunks, device, 1024 if device.type == "cuda" else 32)
    shift_factor, std = raw.mean().item(), raw.std().item()
    scale_factor = 1 / std
    latents = ((raw - shift_factor) * scale_factor).to(torch.bfloat16)
    del raw
    clip_ids = np.concatenate([c[1] for c in chunks])
    # CLIP's mask is causal and FluxPipeline pools at the first end token: the ids after it change nothing.
    clip_length = int((clip_ids == tok.clip_pad).argmax(1).max()) + 1
    clip_ids = torch.from_numpy(clip_ids[:, :clip_length]).long().to(device)
    t5_ids = torch.from_numpy(np.concatenate([c[2] for c in chunks])).long().to(device)
    captions = [cap for c in chunks for cap in c[3]]
    log(f"CLIP ids kept: {clip_length}; latents {tuple(latents.shape)}: shift_factor {shift_factor:.4f}, scaling_factor {scale_factor:.4f}; "
        f"e.g. '{captions[0]}'")

    if device.type == "cuda":
        checker.join(timeout=max(1.0, START + 0.45 * args.budget - time.time()))
        settings = chosen[0] if chosen else CANDIDATES[-1]
        apply_settings(settings)
        log(f"settings for the text encoders and transformer: {settings}")
    else:
        settings = "cpu"
    h = config.RESOLUTION // 16
    mu = config.mu(h * h)
    reserve = 30 if not args.smoke else 20
    models = (clip, t5, transformer)
    deadline = START + args.budget - reserve if not args.smoke else time.time() + 20
    try:
        flux_steps, flux_losses, ema = train_flux(models, (latents, clip_ids, t5_ids), device, deadline, args.batch,
                                                  args.lr, mu, 200 if not args.smoke else 5)
    except Exception as error:
        log(f"training failed: {error!r}")
        raise

    def save(which):
        for name, module in [("clip", clip), ("t5", t5), ("vae", vae), ("transformer", transformer)]:
            state = {k: v.detach().to(torch.bfloat16).cpu().contiguous().clone()
                     for k, v in module.state_dict().items()}
            save_file(state, str(args.out / f"{name}.safetensors"))
        meta = {"scaling_factor": scale_factor, "shift_factor": shift_factor, "saved": which,
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
                "seconds": round(time.time() - START, 1), "vae_steps": vae_steps, "vae_batch": args.vae_batch,
                "vae_losses": vae_losses, "flux_steps": flux_steps, "batch": args.batch, "lr": args.lr,
                "scenes": args.scenes, "mu": mu, "settings": settings, "flux_losses": flux_losses, "check": results}
        (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
        log(f"saved {which} weights")

    # The EMA weights first, so that nothing after this can lose the run.
    results = {}
    ema.swap()
    save("ema")
    try:
        from PIL import Image
        prompts = scenes.heldout_prompts()[:64 if not args.smoke else 8]
        texts = [p for p, _ in prompts]
        images = {}
        for which in ("ema", "raw"):
            if which == "raw":
                ema.swap()
            images[which] = sample(models, vae, tok, texts, device, config.DEFAULTS["steps"] if not args.smoke else 3,
                                   mu, shift_factor, scale_factor, seed=0, t5_length=t5_length)
            results[which] = evaluate(images[which], prompts)
            log(f"held-out check ({which} weights, {len(prompts)} prompts): " +
                ", ".join(f"{k} {v:.0%}" for k, v in results[which].items()))
        adherence = {w: sum(results[w][k] for k in ("color", "shape", "count")) for w in ("ema", "raw")}
        best = "raw" if adherence["raw"] > adherence["ema"] else "ema"
        if best == "ema":
            ema.swap()
        save(best)
        Image.fromarray(grid(images[best], 8)).save(args.out / "samples.png")
        with torch.no_grad():  # reconstructions of training scenes under the originals
            part = {k: torch.from_numpy(v[:8]).to(device) for k, v in chunks[0][0].items()}
            x = scenes.render(part)
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
        Image.fromarray(grid(np.concatenate([scenes.to_uint8(x), scenes.to_uint8(y)]), 8)).save(args.out / "vae.png")
    except Exception as error:  # keep the saved EMA weights
        log(f"check failed: {error!r}")
    log(f"done in {time.time() - START:.1f}s")


if __name__ == "__main__":
    main()
