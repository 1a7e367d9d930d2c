"""The built-in demo model (`fluxserve generate ... --model demo`): a tiny FLUX pipeline with seeded random weights.

A complete diffusers pipeline folder (loadable by diffusers' FluxPipeline too) written to models/demo/: FLUX's
architecture at toy size (16 latent channels, ×8 VAE, guidance embedding like dev), bf16 weights derived from a fixed
seed, the small tokenizers from make_demo_tokenizers.py, and fluxserve.json with the demo's default settings.
Untrained: it draws structured noise. (The trained demo replaces these weights; see the demo-model issue.)
"""
import json
import pathlib
import shutil
import sys

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
from make_pipeline_fixtures import randomize  # noqa: E402

SEED = 20261126
DEFAULTS = {"width": 128, "height": 128, "steps": 20, "guidance": 3.5, "max_sequence_length": 32}


def main():
    out = ROOT / "models" / "demo"
    tokenizers = HERE / "tokenizers"
    tokenizer = CLIPTokenizer.from_pretrained(tokenizers / "tokenizer")
    tokenizer_2 = T5TokenizerFast.from_pretrained(tokenizers / "tokenizer_2")
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id, hidden_act="quick_gelu"))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=64, d_kv=16, num_heads=4, d_ff=128,
                                 num_layers=2, feed_forward_proj="gated-gelu", is_encoder_decoder=False))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[16, 32, 32, 32],
                        layers_per_block=1, norm_num_groups=8,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    transformer = FluxTransformer2DModel(in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=32,
                                         num_attention_heads=2, joint_attention_dim=64, pooled_projection_dim=64,
                                         guidance_embeds=True, axes_dims_rope=(8, 12, 12))
    for i, model in enumerate([clip, t5, vae, transformer]):
        randomize(model, SEED + i)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tokenizer, text_encoder_2=t5,
                        tokenizer_2=tokenizer_2, transformer=transformer)
    if out.exists():
        shutil.rmtree(out)
    pipe.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    for sub in ["tokenizer", "tokenizer_2"]:  # the tokenizer files as made, not re-serialised
        shutil.rmtree(out / sub)
        shutil.copytree(tokenizers / sub, out / sub)
    (out / "fluxserve.json").write_text(json.dumps({"name": "demo", "defaults": DEFAULTS}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")
    check = FluxPipeline.from_pretrained(out, torch_dtype=torch.float32)
    image = check("a red circle", height=128, width=128, num_inference_steps=2, max_sequence_length=32,
                  output_type="pt", generator=torch.Generator().manual_seed(0)).images
    print("diffusers loads it:", tuple(image.shape))


if __name__ == "__main__":
    main()
