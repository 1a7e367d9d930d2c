"""Whole-pipeline fixtures: tiny FluxPipelines with random weights, run end to end by diffusers.

Each pipeline is a complete diffusers folder (model_index.json, scheduler/, text_encoder/ (CLIP), text_encoder_2/ (T5),
tokenizer/, tokenizer_2/, transformer/, vae/) saved by `FluxPipeline.save_pretrained` with bf16 weights. The
reference runs in float32 on weights loaded back from that folder, so f32 Swift code reading the same files can match.
Each case fixes the prompt, size, steps, guidance and the packed initial `latents` (the pipeline's noise), and stores
the `image` FluxPipeline returns with output_type="pt" (B, 3, H, W) in 0..1. Cases with `cache_threshold` apply
diffusers' First Block Cache hook (`apply_first_block_cache`) and record which steps it skipped.

Writes Tests/Fixtures/pipeline/<pipeline>/ and Tests/Fixtures/pipeline/cases/<case>.safetensors (inputs: `latents`;
metadata: prompt, height, width, num_inference_steps, guidance_scale, max_sequence_length, cache_threshold;
outputs: `image`, plus `skipped_steps` in the metadata). Deterministic. Run with the pinned venv (README.md here).
`--out DIR --seed-offset N` writes a held-out set elsewhere.
"""
import argparse
import json
import pathlib
import shutil

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache
from diffusers.hooks import first_block_cache as fbc
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKENIZERS = ROOT / "Tests" / "Fixtures" / "tokenizers"


def randomize(model, seed, scale=1.0):
    """Deterministic weights large enough that every block matters (default inits make tiny models nearly linear)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1 and ("norm" in name or "layer_norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * scale / fan_in ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def build_pipeline(spec, seed):
    tokenizer = CLIPTokenizer.from_pretrained(spec["clip_tokenizer"], model_max_length=77)
    tokenizer_2 = T5TokenizerFast.from_pretrained(spec["t5_tokenizer"])
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=spec["clip_hidden"],
                                        intermediate_size=2 * spec["clip_hidden"], num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=77,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id, hidden_act="quick_gelu"))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=spec["t5_dim"], d_kv=8, num_heads=4,
                                 d_ff=2 * spec["t5_dim"], num_layers=2, feed_forward_proj="gated-gelu",
                                 relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                 is_encoder_decoder=False))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=spec["latent_channels"],
                        block_out_channels=spec["vae_blocks"], layers_per_block=1, norm_num_groups=8,
                        down_block_types=["DownEncoderBlock2D"] * len(spec["vae_blocks"]),
                        up_block_types=["UpDecoderBlock2D"] * len(spec["vae_blocks"]),
                        scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    transformer = FluxTransformer2DModel(in_channels=4 * spec["latent_channels"], num_layers=spec["double"],
                                         num_single_layers=spec["single"], attention_head_dim=16,
                                         num_attention_heads=2, joint_attention_dim=spec["t5_dim"],
                                         pooled_projection_dim=spec["clip_hidden"],
                                         guidance_embeds=spec["guidance"], axes_dims_rope=(4, 6, 6))
    for i, model in enumerate([clip, t5, vae, transformer]):
        randomize(model, seed + i, scale=spec.get("scale", 1.0))
    scheduler = FlowMatchEulerDiscreteScheduler(**spec["scheduler"])
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tokenizer,
                        text_encoder_2=t5, tokenizer_2=tokenizer_2, transformer=transformer)


def run(folder, case, latents, threshold):
    """One FluxPipeline call on a pipeline freshly loaded from `folder` (so no hook state carries over); returns the
    image and the steps First Block Cache skipped."""
    pipe = FluxPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    decisions = []
    if threshold > 0:
        original = fbc.FBCHeadBlockHook._should_compute_remaining_blocks

        def recording(self, residual):
            state = self.state_manager.get_state()
            if state.head_block_residual is not None:
                prev = state.head_block_residual
                diff = ((residual - prev).abs().mean() / prev.abs().mean()).item()
            else:
                diff = None
            result = original(self, residual)
            decisions.append({"compute": bool(result), "change": diff})
            return result

        fbc.FBCHeadBlockHook._should_compute_remaining_blocks = recording
        apply_first_block_cache(pipe.transformer, FirstBlockCacheConfig(threshold=threshold))
    try:
        with torch.no_grad():
            image = pipe(prompt=case["prompt"], height=case["height"], width=case["width"],
                         num_inference_steps=case["steps"], guidance_scale=case["guidance"],
                         max_sequence_length=case["max_sequence_length"], latents=latents, output_type="pt",
                         num_images_per_prompt=case.get("num_images", 1)).images
    finally:
        if threshold > 0:
            fbc.FBCHeadBlockHook._should_compute_remaining_blocks = original
    skipped = [i for i, d in enumerate(decisions) if not d["compute"]]
    return image, skipped, decisions


PIPELINES = {
    "dev_tiny": dict(clip_tokenizer=str(TOKENIZERS / "clip-json"), t5_tokenizer=str(TOKENIZERS / "t5"),
                     clip_hidden=16, t5_dim=16, latent_channels=8, vae_blocks=[8, 16, 16], double=2, single=2,
                     guidance=True,
                     scheduler=dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                    max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)),
    "schnell_tiny": dict(clip_tokenizer=str(TOKENIZERS / "clip-json"), t5_tokenizer=str(TOKENIZERS / "t5"),
                         clip_hidden=24, t5_dim=16, latent_channels=4, vae_blocks=[8, 16], double=1, single=2,
                         share_tokenizers="dev_tiny",
                         guidance=False, scheduler=dict(num_train_timesteps=1000, shift=1.0,
                                                        use_dynamic_shifting=False)),
}

CASES = [
    dict(name="dev_fox", pipeline="dev_tiny", prompt="a red fox in snow, watercolor", height=48, width=64, steps=5,
         guidance=3.5, max_sequence_length=24, cache_threshold=0.0, seed=1),
    dict(name="dev_unicode_batch2", pipeline="dev_tiny", prompt="Café «naïve» 東京の夜 🌃 — 2 images", height=32,
         width=32, steps=3, guidance=5.0, max_sequence_length=16, cache_threshold=0.0, seed=2, num_images=2),
    dict(name="dev_fbcache", pipeline="dev_tiny", prompt="a lighthouse at dusk", height=48, width=48, steps=8,
         guidance=3.5, max_sequence_length=20, cache_threshold="auto", seed=3),
    dict(name="schnell_square", pipeline="schnell_tiny", prompt="a blue square on a white background", height=32,
         width=48, steps=4, guidance=0.0, max_sequence_length=16, cache_threshold=0.0, seed=4),
]


def choose_threshold(folder, case, latents):
    """A threshold between two measured changes, far from both, so that a few steps (not all) are skipped."""
    _, _, decisions = run(folder, case, latents, 1e-9)
    changes = sorted(d["change"] for d in decisions if d["change"] is not None)
    mid = len(changes) // 2
    return round((changes[mid - 1] + changes[mid]) / 2, 6) if len(changes) > 1 else 0.5


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "Tests" / "Fixtures" / "pipeline"))
    parser.add_argument("--seed-offset", type=int, default=0)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    torch.manual_seed(0)
    pipes = {}
    for name, spec in PIPELINES.items():
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        pipe = build_pipeline(spec, seed=100 * (1 + list(PIPELINES).index(name)) + args.seed_offset)
        pipe.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
        # Keep the tokenizers as the files they were made from (smaller than the re-serialised tokenizer.json; the
        # reference below loads them back from this folder, so it tokenizes from exactly these files).
        (folder / "tokenizer" / "tokenizer.json").unlink()
        shutil.copy(pathlib.Path(spec["clip_tokenizer"]) / "tokenizer.json", folder / "tokenizer" / "tokenizer.json")
        (folder / "tokenizer_2" / "tokenizer.json").unlink()
        shutil.copy(pathlib.Path(spec["t5_tokenizer"]) / "spiece.model", folder / "tokenizer_2" / "spiece.model")
        if "share_tokenizers" in spec:  # the same tokenizer files: link them instead of storing them twice
            for sub in ["tokenizer", "tokenizer_2"]:
                shutil.rmtree(folder / sub)
                (folder / sub).symlink_to(pathlib.Path("..") / spec["share_tokenizers"] / sub)
        pipes[name] = folder
    (out / "cases").mkdir(parents=True, exist_ok=True)
    for case in CASES:
        folder = pipes[case["pipeline"]]
        spec = PIPELINES[case["pipeline"]]
        vae_scale = 2 ** (len(spec["vae_blocks"]) - 1)
        h, w = case["height"] // vae_scale // 2, case["width"] // vae_scale // 2
        batch = case.get("num_images", 1)
        g = torch.Generator().manual_seed(case["seed"] + args.seed_offset)
        latents = torch.randn(batch, h * w, 4 * spec["latent_channels"], generator=g)
        threshold = case["cache_threshold"]
        if threshold == "auto":
            threshold = choose_threshold(folder, case, latents)
        image, skipped, decisions = run(folder, case, latents, threshold)
        metadata = dict(pipeline=case["pipeline"], prompt=case["prompt"], height=str(case["height"]),
                        width=str(case["width"]), num_inference_steps=str(case["steps"]),
                        guidance_scale=str(case["guidance"]), max_sequence_length=str(case["max_sequence_length"]),
                        cache_threshold=str(threshold), skipped_steps=json.dumps(skipped),
                        decisions=json.dumps(decisions))
        save_file({"latents": latents.contiguous()}, str(out / "cases" / f"{case['name']}.inputs.safetensors"),
                  metadata=metadata)
        save_file({"image": image.float().contiguous()}, str(out / "cases" / f"{case['name']}.image.safetensors"),
                  metadata=metadata)
        print(f"{case['name']}: image {tuple(image.shape)} mean {image.mean():.4f} std {image.std():.4f}; "
              f"threshold {threshold} skipped {skipped}")


if __name__ == "__main__":
    main()
