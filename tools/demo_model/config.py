"""The demo model's architecture: FLUX.1-dev's pipeline layout at toy size. One place for every size, read by the
training script (on the GPU machine) and by assemble.py (here, with the pinned diffusers/transformers)."""

RESOLUTION = 128
DEFAULTS = {"width": 128, "height": 128, "steps": 20, "guidance": 3.5, "max_sequence_length": 32}

# 16 latent channels (FLUX's own number) and wider blocks than the first demo's (8 channels, 16-32-64-64): small stars
# and triangles came back from that one as blobs (12 of 30 small stars still read as stars after a round trip).
VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[32, 48, 64, 96],
           layers_per_block=1, norm_num_groups=8, down_block_types=["DownEncoderBlock2D"] * 4,
           up_block_types=["UpDecoderBlock2D"] * 4, use_quant_conv=False, use_post_quant_conv=False,
           sample_size=RESOLUTION)

CLIP = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=128)

T5 = dict(d_model=128, d_kv=32, num_heads=4, d_ff=256, num_layers=2, feed_forward_proj="gated-gelu",
          is_encoder_decoder=False, dropout_rate=0.0)

TRANSFORMER = dict(patch_size=1, in_channels=4 * VAE["latent_channels"], num_layers=2, num_single_layers=6,
                   attention_head_dim=64, num_attention_heads=3, joint_attention_dim=128, pooled_projection_dim=128,
                   guidance_embeds=True, axes_dims_rope=(8, 28, 28))

# FLUX.1-dev's scheduler, unchanged: dynamic shifting by image sequence length (64 tokens here → mu ≈ 0.47).
SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                 base_image_seq_len=256, max_image_seq_len=4096)


def mu(image_seq_len):
    """FluxPipeline's calculate_shift with the scheduler's settings."""
    s = SCHEDULER
    m = (s["max_shift"] - s["base_shift"]) / (s["max_image_seq_len"] - s["base_image_seq_len"])
    return image_seq_len * m + s["base_shift"] - m * s["base_image_seq_len"]


def build(clip_vocab, t5_vocab, clip_ids):
    """Fresh modules (float32, default init): clip, t5, vae, transformer. clip_ids: (bos, eos, pad)."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
    bos, eos, pad = clip_ids
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=clip_vocab, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
                                        **CLIP))
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **T5))
    vae = AutoencoderKL(**VAE)
    transformer = FluxTransformer2DModel(**TRANSFORMER)
    return clip, t5, vae, transformer
