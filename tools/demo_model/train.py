"""Trains the demo model from nothing, in one run that fits one GPU call (~8 minutes on an H100):

1. the autoencoder (diffusers AutoencoderKL, 16 latent channels, ×8) on freshly drawn scenes (pointed shapes drawn a
   little more often), L1 + L2 weighted up near colour edges (where small stars and triangles lose their points),
   a light KL, and a learning rate that decays over the last 30% of the phase;
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
   The loss (text encoders + transformer) runs eagerly first; once a child process has shown that torch.compile
   works here (see "Settings"), it switches to the compiled loss, times both and keeps the faster.
4. a quick check on the GPU: the held-out prompts, 20 Euler steps, scored by classify.py, for the EMA weights and
   the raw ones; the better set is saved. Then the autoencoder's round trip on training-like scenes, read by the same
   classifier (which shapes the autoencoder itself loses).

Settings: PyTorch's cuDNN attention fails in the backward pass on the H100 machine (`mha_graph.execute(...)`), and a
CUDA error ends a process, so cuDNN SDPA stays off and child processes try, while the autoencoder trains: (a) the
eager settings in turn (bf16 autocast, then math SDPA, then f32), the first that works is used; (b) torch.compile
(inductor, default mode, static shapes) of the loss with those settings. The child's compilation fills inductor's
on-disk cache, so the main process then compiles the same graphs in seconds.

Every phase runs to a wall-clock deadline. Writes to --out: {clip,t5,vae,transformer}.safetensors (bf16),
meta.json (VAE scale/shift, config, losses, scores, timings), train.log, samples.png, vae.png. assemble.py turns them
into the pipeline folder. `--smoke` runs every phase, the preflights (one made to fail) and the switch to the compiled
loss and back (a failure injected) included, in a few minutes on the CPU (compile backend aot_eager there: inductor's
C++ build of this model takes minutes on two cores).
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
LOG_FILE = []
# How the text encoders and transformer run: bf16 autocast or not, and which SDPA kernels may serve (cuDNN's never).
SETTINGS = {"autocast": True}
CANDIDATES = ["bf16-no-cudnn-sdpa", "bf16-math-sdpa", "fp32-math-sdpa"]
# CLIP ids are cut after the longest caption's end token, but never shorter than this: the compile preflight traces
# with this length, so that the main process finds its graphs in inductor's cache.
CLIP_LENGTH = 35


def apply_settings(name):
    SETTINGS["autocast"] = name.startswith("bf16")
    torch.backends.cuda.enable_cudnn_sdp(False)
    if name.endswith("math-sdpa"):
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)


def global_settings():
    """The same in the main process and the preflights (inductor's cache key includes them)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.enable_cudnn_sdp(False)


def log(message):
    line = f"[{time.time() - START:6.1f}s] {message}"
    print(line, flush=True)
    LOG.append(line)
    if LOG_FILE:
        with open(LOG_FILE[0], "a") as f:
            f.write(line + "\n")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


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

# Pointed shapes, whose corners a ×8 autoencoder rounds off first, a little more often than round ones.
VAE_SHAPE_WEIGHTS = {"circle": 0.8, "square": 1.0, "triangle": 1.1, "star": 1.3}


def edge_weights(x, strength):
    """Per-pixel loss weights (B,1,H,W): 1 in flat regions, up to 1 + strength on and beside colour edges (the
    largest per-channel step to a 4-neighbour, full weight from a step of 0.5 in the -1…1 range, widened by a 3×3
    maximum)."""
    step = torch.zeros_like(x[:, :1])
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1, keepdim=True)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1, keepdim=True)
    step[..., :, 1:] = dx
    step[..., :, :-1] = torch.maximum(step[..., :, :-1], dx)
    step[..., 1:, :] = torch.maximum(step[..., 1:, :], dy)
    step[..., :-1, :] = torch.maximum(step[..., :-1, :], dy)
    step = F.max_pool2d(step, 3, stride=1, padding=1)
    return 1 + strength * (step / 0.5).clamp(max=1)


def train_vae(vae, device, deadline, batch, lr, edge_strength, warmup=200, min_steps=0):
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0,
                            fused=device.type == "cuda")
    generator = torch.Generator(device=device).manual_seed(1)
    weights = [VAE_SHAPE_WEIGHTS[s] for s in scenes.SHAPES]
    step, losses, t0 = 0, [], time.time()
    span = max(deadline - t0, 1e-9)
    drawn = 8 * batch  # scenes drawn per call: drawing is bound by launches and syncs, not by pixels
    while time.time() < deadline or step < min_steps:
        profile = step in (40, 60) and device.type == "cuda"
        if profile:
            sync(device)
            t_render = time.time()
        if step % 8 == 0:
            with torch.no_grad():
                pictures = scenes.render(scenes.random_params(drawn, generator, device, weights))
                edges = edge_weights(pictures, edge_strength)
        x = pictures[(step % 8) * batch:(step % 8 + 1) * batch]
        w = edges[(step % 8) * batch:(step % 8 + 1) * batch]
        if profile:
            sync(device)
            t_render, t_step = time.time() - t_render, time.time()
        # Warm-up, then constant, then a cosine to 5% over the last 30% of the phase (sharper at the end).
        frac = (time.time() - t0) / span
        scale = min(1.0, (step + 1) / warmup) * (1.0 if frac < 0.7 else 0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, (frac - 0.7) / 0.3))))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
            y = vae.decode(posterior.sample()).sample
        d = y.float() - x
        error = d.abs() + 2 * d * d
        recon = (w * error).sum() / (w.sum() * x.shape[1])
        kl = 0.5 * (posterior.mean.float() ** 2 + posterior.var.float() - 1 - posterior.logvar.float()).mean()
        loss = recon + 1e-5 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if profile:
            sync(device)
            log(f"vae step {step}: drawing {t_render * 1e3:.1f} ms, "
                f"training step {(time.time() - t_step) * 1e3:.1f} ms")
        if step % 25 == 0:
            losses.append((step, round(time.time() - t0, 1), error.mean().item(), recon.item(), kl.item()))
        if step % 250 == 0:
            log(f"vae step {step}: recon {error.mean().item():.4f} (edge-weighted {recon.item():.4f}) "
                f"kl {kl.item():.2f} lr {lr * scale:.1e} ({step / max(time.time() - t0, 1e-9):.1f} steps/s)")
        step += 1
    log(f"vae done: {step} steps, last recon {error.mean().item():.4f} (edge-weighted {recon.item():.4f})")
    vae.eval()
    return step, losses


@torch.no_grad()
def encode_dataset(vae, chunks, device, batch):
    """Draws every scene and keeps its latent mean (N, C, h, w), f32 on the device."""
    params = {k: torch.from_numpy(np.concatenate([c[0][k] for c in chunks])) for k in chunks[0][0]}
    n = params["bg"].shape[0]
    out = []
    for i in range(0, n, batch):
        part = {k: v[i:i + batch].to(device) for k, v in params.items()}
        x = scenes.render(part)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(vae.encode(x).latent_dist.mean.float())
    return torch.cat(out)


@torch.no_grad()
def vae_round_trip(vae, device, count):
    """Shapes read right by classify.py in training-like scenes and in their reconstructions, per shape and size."""
    import classify
    batch = [scenes.scene(3, i) for i in range(count)]
    x = scenes.render({k: v.to(device) for k, v in scenes.pack(batch).items()})
    y = torch.cat([vae.decode(vae.encode(x[i:i + 64]).latent_dist.mean).sample for i in range(0, count, 64)])
    tally = {}
    for s, a, b in zip(batch, scenes.to_uint8(x), scenes.to_uint8(y)):
        for key in (s.shape, f"{s.size or 'medium'} {s.shape}"):
            t = tally.setdefault(key, [0, 0, 0])
            t[0] += classify.score(a, s.attributes())["shape"]
            t[1] += classify.score(b, s.attributes())["shape"]
            t[2] += 1
    return {k: tally[k] for k in sorted(tally)}


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


class Compiler:
    """When and how train_flux compiles its loss. `state["compile"]` turns True once a preflight has compiled it in a
    child process (False: it failed there). The loss runs eagerly for the first `timed[0] + timed[1]` steps, the
    last `timed[1]` of them timed; from step `switch_at` (by default that one) it runs compiled as soon as it may,
    if more than `min_left` seconds of training are left then.
    The first compiled call (the compilation, or its loading from inductor's cache) is timed apart and its loss must
    equal the eager loss of the same batch (within 2%); the `timed[1]` calls after `timed[0]` more are timed, and the
    faster way is kept. An exception in a compiled call, or one injected by `fail_at` (the number of compiled calls
    after which to raise, for the smoke test), goes back to the eager loss for good."""

    def __init__(self, backend, state, timed=(10, 20), fail_at=None, switch_at=None, min_left=0.0):
        self.backend, self.state, self.timed, self.fail_at = backend, state, timed, fail_at
        self.min_left = min_left  # seconds of training that must be left for the switch to pay
        self.switch_at = sum(timed) if switch_at is None else switch_at
        self.mode = "eager"  # → "compiled" → ("kept" | "eager-for-good")
        self.calls, self.marks, self.report = 0, {}, {}


def train_flux(models, data, device, deadline, batch, lr, mu, log_every, max_steps=None, compiler=None, done=None):
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
    autocast = device.type == "cuda" and SETTINGS["autocast"]

    def loss_of(x0, noise, sigma, guidance, cids, tids):
        s = sigma[:, None, None, None]
        xt = pack_latents((1 - s) * x0 + s * noise)
        target = pack_latents(noise - x0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            pooled, states = encode_text(clip, t5, cids, tids)
            pred = transformer(hidden_states=xt, encoder_hidden_states=states, pooled_projections=pooled,
                               timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, guidance=guidance,
                               return_dict=False)[0]
        return F.mse_loss(pred.float(), target)

    compiled = None
    t0, step, losses, window = time.time(), 0, [], []
    span = deadline - t0
    generator = torch.Generator(device=device).manual_seed(2)
    while time.time() < deadline and (max_steps is None or step < max_steps) and not (done and done(step, compiler)):
        cp = compiler
        if cp and cp.mode == "eager" and step == cp.timed[0]:
            sync(device)
            cp.marks["eager"] = time.time()
        if cp and cp.mode == "eager" and step == sum(cp.timed):
            sync(device)
            cp.report["eager_ms"] = (time.time() - cp.marks["eager"]) / cp.timed[1] * 1e3
            log(f"step time, eager: {cp.report['eager_ms']:.1f} ms at batch {batch}")
        if cp and cp.mode == "eager" and step >= cp.switch_at and cp.state.get("compile") and \
                deadline - time.time() > cp.min_left:
            compiled = torch.compile(loss_of, backend=cp.backend, dynamic=False)
            cp.mode, cp.report["compiled_at_step"] = "compiled", step
            log(f"switching to the compiled loss ({cp.backend}) at step {step}")
        use = cp is not None and cp.mode in ("compiled", "kept")
        if use and cp.calls in (0, 1 + cp.timed[0]):
            sync(device)
            cp.marks[cp.calls] = time.time()
        frac = (time.time() - t0) / span
        scale = min(1.0, (step + 1) / 300) * (1.0 if frac < 0.6 else 0.1 + 0.9 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, (frac - 0.6) / 0.4))))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        idx = torch.randint(n, (batch,), device=device, generator=generator)
        x0 = latents[idx].float()
        noise = torch.randn(x0.shape, device=device, generator=generator)
        u = torch.sigmoid(torch.randn(batch, device=device, generator=generator))
        sigma = math.exp(mu) / (math.exp(mu) + (1 / u.clamp(1e-5, 1 - 1e-5) - 1))
        guidance = 1 + 5 * torch.rand(batch, device=device, generator=generator)
        opt.zero_grad(set_to_none=True)
        if use:
            try:
                if cp.fail_at is not None and cp.calls == cp.fail_at:
                    raise RuntimeError("failure injected for the smoke test")
                loss = compiled(x0, noise, sigma, guidance, clip_ids[idx], t5_ids[idx])
                if cp.calls == 0:  # the compiled loss must equal the eager one on the same batch
                    with torch.no_grad():
                        reference = loss_of(x0, noise, sigma, guidance, clip_ids[idx], t5_ids[idx]).item()
                    cp.report["first_loss"] = [round(loss.item(), 5), round(reference, 5)]
                    if not abs(loss.item() - reference) <= 0.02 * abs(reference) + 1e-3:
                        raise RuntimeError(f"compiled loss {loss.item():.5f} ≠ eager {reference:.5f}")
                loss.backward()
            except Exception as error:  # a Python-level failure of the compiled code: back to eager for good
                cp.mode, cp.report["failed"] = "eager-for-good", repr(error)[:300]
                log(f"compiled loss failed at step {step} ({error!r}); eager from here")
                opt.zero_grad(set_to_none=True)
                use = False
        if not use:
            loss = loss_of(x0, noise, sigma, guidance, clip_ids[idx], t5_ids[idx])
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        if use:
            cp.calls += 1
            if cp.calls == 1:
                sync(device)
                cp.report["compile_s"] = round(time.time() - cp.marks[0], 1)
                log(f"first compiled step (compilation, or loading it from the cache): {cp.report['compile_s']} s")
            if cp.calls == 1 + sum(cp.timed):
                sync(device)
                ms = (time.time() - cp.marks[1 + cp.timed[0]]) / cp.timed[1] * 1e3
                cp.report["compiled_ms"] = ms
                eager_ms = cp.report.get("eager_ms", math.inf)
                keep = ms < 0.97 * eager_ms
                cp.mode = "kept" if keep else "eager-for-good"
                log(f"step time, compiled: {ms:.1f} ms at batch {batch} (eager {eager_ms:.1f} ms): "
                    + ("compiled from here" if keep else "no faster, eager from here"))
        window.append(loss.detach())
        if step % log_every == 0:
            mean = torch.stack(window).mean().item()
            window = []
            losses.append((step, round(time.time() - t0, 1), mean))
            log(f"flux step {step}: loss {mean:.4f} grad {norm.item():.2f} lr {lr * scale:.2e} "
                f"({step / max(time.time() - t0, 1e-9):.1f} steps/s, {frac:.0%})")
        step += 1
    way = "eager" if compiler is None or compiler.mode != "kept" else f"compiled ({compiler.backend})"
    log(f"flux done: {step} steps of batch {batch}, {way} at the end")
    for m in models:
        m.eval()
    return step, losses, ema


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
    """Scores (fractions) and, per prompted shape, how many of its prompts got it: {"star": [right, of], ...}."""
    import classify
    totals = {"color": 0, "shape": 0, "count": 0, "background": 0}
    places, per_shape = [0, 0], {s: [0, 0] for s in scenes.SHAPES}
    for image, (_, attrs) in zip(images, prompts):
        r = classify.score(image, attrs)
        for k in totals:
            totals[k] += r[k]
        if r["place"] is not None:
            places[0] += r["place"]
            places[1] += 1
        per_shape[attrs[3]][0] += r["shape"]
        per_shape[attrs[3]][1] += 1
    out = {k: v / len(prompts) for k, v in totals.items()}
    out["place"] = places[0] / max(places[1], 1)
    return out, per_shape


def grid(images, columns):
    rows = math.ceil(len(images) / columns)
    h, w = images.shape[1:3]
    out = np.full((rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im
    return out


# ---- settings: tried in child processes while the autoencoder trains ------------------------------------------------

def preflight(args):
    """A few training steps and a short sampling on made-up data with the settings `args.preflight`; with
    `--compile-backend`, training steps of the compiled loss instead (which fills inductor's cache)."""
    import config
    if args.preflight == "smoke-broken":
        raise RuntimeError("this candidate fails on purpose (smoke test of the fallback)")
    global_settings()
    apply_settings(args.preflight)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    tok = Tokenizers()
    clip, t5, vae, transformer = config.build(
        tok.clip.get_vocab_size(), tok.t5.get_piece_size(),
        (tok.clip.token_to_id("<|startoftext|>"), tok.clip_pad, tok.clip_pad))
    zero_init(transformer)
    for m in (clip, t5, vae, transformer):
        m.to(device)
    n, c = (4096 if not args.smoke else 64), config.VAE["latent_channels"]
    latents = torch.randn(n, c, config.RESOLUTION // 8, config.RESOLUTION // 8, device=device).to(torch.bfloat16)
    clip_ids = torch.randint(0, tok.clip.get_vocab_size(), (n, CLIP_LENGTH), device=device)
    clip_ids[:, -1] = tok.clip_pad
    t5_ids = torch.randint(0, tok.t5.get_piece_size(), (n, config.DEFAULTS["max_sequence_length"]), device=device)
    models, data = (clip, t5, transformer), (latents, clip_ids, t5_ids)
    if args.compile_backend:
        timed = (2, 3) if not args.smoke else (1, 1)
        compiler = Compiler(args.compile_backend, {"compile": True}, timed=timed, switch_at=0)
        train_flux(models, data, device, time.time() + 1e9, args.batch, args.lr, 0.47, 1000,
                   max_steps=1 + sum(timed), compiler=compiler)
        if compiler.mode != "kept":
            raise RuntimeError(f"the compiled loss did not run: {compiler.report}")
        print("PREFLIGHT OK", json.dumps(compiler.report), flush=True)
        return
    _, losses, _ = train_flux(models, data, device, time.time() + 1e9, args.batch, args.lr, 0.47, 1, max_steps=3)
    sync(device)
    images = sample(models, vae, tok, ["a red circle", "two blue stars"], device, 2, 0.47, 0.0, 1.0, 0, 32)
    print("PREFLIGHT OK", json.dumps({"loss": losses[-1][2], "images": list(images.shape)}), flush=True)


def run_child(args, state, extra, timeout):
    """One preflight in a child process → (ok, report or the last lines of its errors)."""
    command = [sys.executable, __file__, "--out", str(args.out), "--batch", str(args.batch)] + extra
    if args.smoke:
        command.append("--smoke")
    # Inductor compiles on as many processes as there are cores; leave some to the autoencoder's loop and the
    # scene workers, which run meanwhile.
    env = dict(os.environ)
    env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(max(1, min(8, (os.cpu_count() or 2) // 2))))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    state["proc"] = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False, [f"timed out after {timeout} s"]
    finally:
        state["proc"] = None
    if state.get("stopped"):
        return False, ["stopped: training had ended"]
    for line in out.splitlines():
        if proc.returncode == 0 and line.startswith("PREFLIGHT OK"):
            return True, line[len("PREFLIGHT OK"):].strip()
    return False, (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-25:]


def run_preflights(args, state):
    """Eager settings in turn, then the compiled loss with the first that worked. Sets state["eager"] (a name, or
    None if none worked; state["eager_done"] is set then) and state["compile"] (True or False)."""
    ok, name = False, None
    try:
        for name in (["smoke-broken"] if args.smoke else []) + CANDIDATES:
            ok, detail = run_child(args, state, ["--preflight", name], 150 if not args.smoke else 300)
            log(f"preflight {name}: " + (f"ok {detail}" if ok else "failed:\n    " + "\n    ".join(detail)))
            if ok:
                state["eager"] = name
                break
    finally:
        state["eager_done"].set()
    if not ok or args.compile == "off":
        state["compile"] = False
        return
    t = time.time()
    ok, detail = run_child(args, state, ["--preflight", name, "--compile-backend", args.compile_backend],
                           args.compile_timeout)
    log(f"preflight {name} + torch.compile ({args.compile_backend}), {time.time() - t:.0f} s: "
        + (f"ok {detail}" if ok else "failed:\n    " + "\n    ".join(detail)))
    state["compile"] = ok


def stop_preflights(state):
    state["stopped"] = True
    proc = state.get("proc")
    if proc is not None and proc.poll() is None:
        proc.kill()
        log("stopped the preflight still running")


# ---- the run ---------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--budget", type=float, default=490, help="seconds for the whole run")
    parser.add_argument("--vae-seconds", type=float, default=150,
                        help="the autoencoder phase ends this long after the start")
    parser.add_argument("--vae-edge-weight", type=float, default=4.0,
                        help="extra reconstruction weight on and beside colour edges (0: plain L1 + L2)")
    parser.add_argument("--scenes", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--vae-batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--compile", choices=["auto", "off"], default="auto",
                        help="auto: compile the loss if a preflight shows it works, keep it if it is faster")
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; aot_eager with --smoke)")
    parser.add_argument("--compile-timeout", type=float, default=300, help="seconds for the compile preflight")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every phase")
    parser.add_argument("--preflight", help="(internal) try these settings and exit")
    parser.add_argument("--inject-compile-error", type=int, help="(testing) raise in this compiled call")
    args = parser.parse_args()
    if args.preflight:
        return preflight(args)
    import config
    if args.smoke:
        args.budget, args.vae_seconds, args.scenes, args.batch, args.vae_batch, args.workers = 75, 10, 64, 8, 4, 2
        args.compile_backend = args.compile_backend or "aot_eager"
        args.compile_timeout = max(args.compile_timeout, 400)
    args.compile_backend = args.compile_backend or "inductor"
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
    global_settings()
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
                                    [("clip", clip), ("t5", t5), ("vae", vae), ("transformer", transformer)])
        + f"; vae {config.VAE['block_out_channels']} × {config.VAE['latent_channels']} latent channels")

    state = {"eager_done": threading.Event()}
    checker = threading.Thread(target=run_preflights, args=(args, state), daemon=True)
    checker.start()
    vae_steps, vae_losses = train_vae(vae, device, START + args.vae_seconds, args.vae_batch, args.vae_lr,
                                      args.vae_edge_weight, warmup=200 if not args.smoke else 5,
                                      min_steps=0 if not args.smoke else 4)
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
    clip_length = max(CLIP_LENGTH, int((clip_ids == tok.clip_pad).argmax(1).max()) + 1)
    clip_ids = torch.from_numpy(clip_ids[:, :clip_length]).long().to(device)
    t5_ids = torch.from_numpy(np.concatenate([c[2] for c in chunks])).long().to(device)
    captions = [cap for c in chunks for cap in c[3]]
    log(f"CLIP ids kept: {clip_length}; latents {tuple(latents.shape)}: shift_factor {shift_factor:.4f}, "
        f"scaling_factor {scale_factor:.4f}; e.g. '{captions[0]}'")

    if args.smoke:  # two shared cores: the compile preflight first, then the training (on the GPU they overlap)
        checker.join(timeout=600)
    state["eager_done"].wait(timeout=max(1.0, START + 0.45 * args.budget - time.time()))
    settings = state.get("eager") or CANDIDATES[-1]
    apply_settings(settings)
    log(f"settings for the text encoders and transformer: {settings}"
        + ("" if state.get("eager") else " (no preflight had passed: the safest)"))
    h = config.RESOLUTION // 16
    mu = config.mu(h * h)
    models = (clip, t5, transformer)
    compiler, done = None, None
    if args.compile != "off":
        timed = (10, 20) if not args.smoke else (1, 2)
        inject = args.inject_compile_error if not args.smoke or args.inject_compile_error else 1 + sum(timed)
        compiler = Compiler(args.compile_backend, state, timed=timed, fail_at=inject,
                            min_left=90 if not args.smoke else 0)
    if args.smoke:  # on until the compile preflight has answered and the compiled loss has been tried and left
        def done(step, cp):
            if cp is None:
                return step >= 6
            if cp.mode == "eager-for-good" or (cp.mode == "eager" and cp.state.get("compile") is False):
                cp.report.setdefault("settled_at", step)
                return step >= max(cp.report["settled_at"], sum(cp.timed)) + 2
            return False
    deadline = START + args.budget - 35 if not args.smoke else time.time() + 450
    try:
        flux_steps, flux_losses, ema = train_flux(models, (latents, clip_ids, t5_ids), device, deadline, args.batch,
                                                  args.lr, mu, 200 if not args.smoke else 5, compiler=compiler,
                                                  done=done)
    except Exception as error:
        log(f"training failed: {error!r}")
        raise
    finally:
        stop_preflights(state)
    compile_info = {"backend": args.compile_backend, "preflight": state.get("compile"),
                    "final": compiler.mode if compiler else "off", **(compiler.report if compiler else {})}

    def save(which):
        for name, module in [("clip", clip), ("t5", t5), ("vae", vae), ("transformer", transformer)]:
            state_dict = {k: v.detach().to(torch.bfloat16).cpu().contiguous().clone()
                          for k, v in module.state_dict().items()}
            save_file(state_dict, str(args.out / f"{name}.safetensors"))
        meta = {"scaling_factor": scale_factor, "shift_factor": shift_factor, "saved": which,
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
                "seconds": round(time.time() - START, 1), "vae": config.VAE, "vae_steps": vae_steps,
                "vae_batch": args.vae_batch, "vae_lr": args.vae_lr, "vae_edge_weight": args.vae_edge_weight,
                "vae_losses": vae_losses, "flux_steps": flux_steps, "batch": args.batch, "lr": args.lr,
                "scenes": args.scenes, "mu": mu, "settings": settings, "compile": compile_info,
                "flux_losses": flux_losses, "check": results, "vae_round_trip": round_trip}
        (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
        log(f"saved {which} weights")

    # The EMA weights first, so that nothing after this can lose the run.
    results, round_trip = {}, {}
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
            scores, per_shape = evaluate(images[which], prompts)
            results[which] = {**scores, "per_shape": per_shape}
            log(f"held-out check ({which} weights, {len(prompts)} prompts): " +
                ", ".join(f"{k} {v:.0%}" for k, v in scores.items()) + "; shape right per prompted shape: " +
                ", ".join(f"{s} {r}/{n}" for s, (r, n) in per_shape.items()))
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
    try:  # what the autoencoder alone loses (shape read right: drawn → after encode + decode)
        round_trip = vae_round_trip(vae, device, 256 if not args.smoke else 16)
        log("vae round trip, shape read right (drawn → decoded): " +
            ", ".join(f"{k} {a}→{b}/{n}" for k, (a, b, n) in round_trip.items()))
        meta = json.loads((args.out / "meta.json").read_text())
        meta["vae_round_trip"] = round_trip
        (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    except Exception as error:
        log(f"vae round trip failed: {error!r}")
    log(f"done in {time.time() - START:.1f}s")


if __name__ == "__main__":
    main()
