"""diffusers reference timings on the GPU machine, beside `fluxserve bench` in the same device call.

Builds the FLUX.1-dev (or -schnell) architecture with seeded random bf16 weights directly on the GPU (nothing is
downloaded): FluxTransformer2DModel, T5EncoderModel (v1.1 XXL config), CLIPTextModel (ViT-L/14 text config),
AutoencoderKL (FLUX config). Times, as medians after warm-up with CUDA events: T5 encode (512 tokens), CLIP encode,
one transformer step per size, VAE decode, and a whole N-step image (encoders + denoising loop + decode, through
FluxPipeline with precomputed ids), eager and (with --compile) with torch.compile of the transformer.

With --save DIR it also writes a comparison set: the transformer's weights as one safetensors file (diffusers names;
`--compare-layers D,S` keeps only the first D double and S single blocks to bound the file), fixed inputs, and the
sample computed in bf16 and in f32 from the same bf16 weights, so FluxServe's output can be placed beside diffusers'
own bf16 error. Prints a table and writes JSON (--json).

Pinned: diffusers 0.42.1 (carried as a wheel), torch 2.11, transformers as on the GPU machine.
"""
import argparse
import json
import statistics
import time

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

DEV = dict(in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
           joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", is_encoder_decoder=False)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", eos_token_id=2)
VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
           layers_per_block=2, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)


def randomize(model, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                p.normal_(0, 1 / p[0].numel() ** 0.5, generator=g)
            elif "norm" in name and name.endswith("weight"):
                p.normal_(1, 0.1, generator=g)
            else:
                p.normal_(0, 0.02, generator=g)


def build(cls, config, seed, **kw):
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        model = cls(config) if not kw else cls(**config)
        torch.set_default_dtype(torch.float32)
    randomize(model, seed)
    return model.eval().requires_grad_(False)


def bench(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), min(times)


def pack(latents):
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h, w):
    ids = torch.zeros(h // 2, w // 2, 3, device="cuda")
    ids[..., 1] += torch.arange(h // 2, device="cuda")[:, None]
    ids[..., 2] += torch.arange(w // 2, device="cuda")[None, :]
    return ids.reshape(-1, 3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", default="dev", choices=["dev", "schnell"])
    p.add_argument("--sizes", default="1024x1024,768x768,512x512")
    p.add_argument("--steps", type=int, default=28)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the transformer")
    p.add_argument("--stages", default="t5,clip,step,vae,image")
    p.add_argument("--save", help="folder for the comparison set")
    p.add_argument("--compare-layers", default="", help="D,S: blocks kept in the saved transformer")
    p.add_argument("--json")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    stages = set(a.stages.split(","))
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    config = dict(DEV, guidance_embeds=a.variant == "dev")
    rows, load = [], {}

    def record(stage, size, fn, repeats=None):
        median, best = bench(fn, a.warmup, repeats or a.repeats)
        rows.append(dict(stage=stage, size=size, median_ms=median, min_ms=best))
        print(f"{stage:24s} {size:10s} median {median:9.2f} ms   min {best:9.2f} ms", flush=True)

    t0 = time.time()
    transformer = build(FluxTransformer2DModel, config, 1, kw=True)
    load["transformer"] = time.time() - t0
    t0 = time.time()
    t5 = build(T5EncoderModel, T5Config(**T5_XXL), 2)
    clip = build(CLIPTextModel, CLIPTextConfig(**CLIP_L), 3)
    vae = build(AutoencoderKL, VAE, 4, kw=True)
    load["encoders+vae"] = time.time() - t0
    g = torch.Generator(device="cuda").manual_seed(0)
    max_len = 512 if a.variant == "dev" else 256
    t5_ids = torch.randint(0, 32128, (1, max_len), device="cuda", generator=g)
    clip_ids = torch.randint(0, 49408, (1, 77), device="cuda", generator=g)
    guidance = torch.full((1,), 3.5, device="cuda") if config["guidance_embeds"] else None

    with torch.no_grad():
        if "t5" in stages:
            record("t5-encode", f"{max_len} tok", lambda: t5(t5_ids)[0])
        if "clip" in stages:
            record("clip-encode", "77 tok", lambda: clip(clip_ids).pooler_output)
        txt = t5(t5_ids)[0]
        pooled = clip(clip_ids).pooler_output
        txt_ids = torch.zeros(max_len, 3, device="cuda")

        def step_fn(model, h, w):
            img = torch.randn(1, 16, h // 8, w // 8, device="cuda", dtype=torch.bfloat16, generator=g)
            x, ids = pack(img), image_ids(h // 8, w // 8)
            t = torch.full((1,), 0.5, device="cuda", dtype=torch.bfloat16)
            return lambda: model(hidden_states=x, encoder_hidden_states=txt, pooled_projections=pooled, timestep=t,
                                 img_ids=ids, txt_ids=txt_ids, guidance=guidance, return_dict=False)[0]

        if "step" in stages:
            for w, h in sizes:
                record("transformer-step", f"{w}x{h}", step_fn(transformer, h, w))
        w, h = sizes[0]
        if "vae" in stages:
            lat = torch.randn(1, 16, h // 8, w // 8, device="cuda", dtype=torch.bfloat16, generator=g)
            record("vae-decode", f"{w}x{h}", lambda: vae.decode(lat).sample)
        if "image" in stages:
            from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
            sched = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=a.variant == "dev",
                                                    base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                    max_image_seq_len=4096)
            pipe = FluxPipeline(scheduler=sched, vae=vae, text_encoder=clip, tokenizer=None, text_encoder_2=t5,
                                tokenizer_2=None, transformer=transformer)
            pipe.set_progress_bar_config(disable=True)

            def image():
                te = t5(t5_ids)[0]
                po = clip(clip_ids).pooler_output
                return pipe(prompt_embeds=te, pooled_prompt_embeds=po, height=h, width=w,
                            num_inference_steps=a.steps, guidance_scale=3.5, output_type="pt").images
            record(f"image-{a.steps}-steps", f"{w}x{h}", image, repeats=min(a.repeats, 3))
        if a.compile and "step" in stages:
            t0 = time.time()
            compiled = torch.compile(transformer)
            fn = step_fn(compiled, sizes[0][1], sizes[0][0])
            fn()
            torch.cuda.synchronize()
            load["torch.compile first call"] = time.time() - t0
            record("transformer-step+compile", f"{sizes[0][0]}x{sizes[0][1]}", fn)
        peak = torch.cuda.max_memory_allocated()

        if a.save:
            save_comparison(a, transformer, txt, pooled, guidance)

    print(f"load seconds: {load}; peak memory {peak / 1e9:.1f} GB; device {torch.cuda.get_device_name()}")
    if a.json:
        json.dump(dict(rows=rows, load_seconds=load, peak_memory_bytes=peak, device=torch.cuda.get_device_name(),
                       torch=torch.__version__, variant=a.variant), open(a.json, "w"), indent=1)


def save_comparison(a, transformer, txt, pooled, guidance):
    """Weights, inputs, and the bf16 and f32 outputs of one step at 512x512 (4096 would need 48 GB in f32)."""
    import os
    from safetensors.torch import save_file
    os.makedirs(a.save, exist_ok=True)
    if a.compare_layers:
        d, s = (int(v) for v in a.compare_layers.split(","))
        transformer.transformer_blocks = transformer.transformer_blocks[:d]
        transformer.single_transformer_blocks = transformer.single_transformer_blocks[:s]
        transformer.register_to_config(num_layers=d, num_single_layers=s)
    transformer.save_pretrained(os.path.join(a.save, "transformer"), max_shard_size="100GB")
    g = torch.Generator(device="cuda").manual_seed(5)
    h = w = 512
    img = torch.randn(1, 16, h // 8, w // 8, device="cuda", dtype=torch.bfloat16, generator=g)
    inputs = dict(hidden_states=pack(img), encoder_hidden_states=txt, pooled_projections=pooled,
                  timestep=torch.full((1,), 0.7, device="cuda", dtype=torch.bfloat16), img_ids=image_ids(h // 8, w // 8),
                  txt_ids=torch.zeros(txt.shape[1], 3, device="cuda"))
    if guidance is not None:
        inputs["guidance"] = guidance
    out_bf16 = transformer(**inputs, return_dict=False)[0]
    transformer.float()
    out_f32 = transformer(**{k: v.float() for k, v in inputs.items()}, return_dict=False)[0]
    save_file({k: v.float().contiguous().cpu() for k, v in inputs.items()}, os.path.join(a.save, "inputs.safetensors"))
    save_file({"sample_bf16": out_bf16.float().contiguous().cpu(), "sample_f32": out_f32.contiguous().cpu()},
              os.path.join(a.save, "outputs.safetensors"))
    err = ((out_bf16.float() - out_f32).abs().max() / out_f32.abs().max()).item()
    print(f"saved comparison set to {a.save}; diffusers bf16 vs f32 max relative error {err:.3e}")


if __name__ == "__main__":
    main()
