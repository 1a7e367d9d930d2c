"""diffusers itself in bf16 on the GPU, on every committed pipeline case, against the f32 reference image: the error
bf16 arithmetic alone costs on these tiny random pipelines, printed beside FluxServe's own bf16 error by
bench/run_gpu_edits.sh.

Each case runs the diffusers class named in its metadata (FluxPipeline when none) on the committed pipeline folder
in bfloat16 on CUDA, from the case's own inputs: the packed noise `latents` (unpacked and handed out by a patched
`randn_tensor`, or passed as `latents=` to FluxPipeline and FluxKontextPipeline, which use it as the start), `image`,
`mask_image`, and the VAE posterior mean where the pipeline would sample it — the same contract as the fixtures
(make_edit_fixtures.py). First Block Cache cases apply diffusers' hook with the case's threshold.
Usage: python3 diffusers_bf16_cases.py CASES_DIR PIPELINES_DIR [--device cpu --dtype float32] (the latter, a check
that this script reproduces the fixtures: errors ~1e-6).
"""
import contextlib
import importlib
import pathlib
import sys

import torch
from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache
from safetensors import safe_open
from safetensors.torch import load_file

MODULES = {
    "FluxPipeline": "pipeline_flux", "FluxImg2ImgPipeline": "pipeline_flux_img2img",
    "FluxInpaintPipeline": "pipeline_flux_inpaint", "FluxFillPipeline": "pipeline_flux_fill",
    "FluxKontextPipeline": "pipeline_flux_kontext",
}


@contextlib.contextmanager
def patched(module, noise):
    """randn_tensor → the case's noise in the asked dtype; retrieve_latents → the posterior mean."""
    saved = module.randn_tensor, getattr(module, "retrieve_latents", None)

    def fake_randn(shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == tuple(noise.shape), (shape, noise.shape)
        return noise.to(device=device, dtype=dtype)

    def mean(encoder_output, generator=None, sample_mode="sample"):
        return saved[1](encoder_output, generator=generator, sample_mode="argmax")

    module.randn_tensor = fake_randn
    if saved[1] is not None:
        module.retrieve_latents = mean
    try:
        yield
    finally:
        module.randn_tensor = saved[0]
        if saved[1] is not None:
            module.retrieve_latents = saved[1]


def main():
    cases, pipelines = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"
    dtype = getattr(torch, sys.argv[sys.argv.index("--dtype") + 1]) if "--dtype" in sys.argv else torch.bfloat16
    for inputs_path in sorted(cases.glob("*.inputs.safetensors")):
        name = inputs_path.name[: -len(".inputs.safetensors")]
        with safe_open(str(inputs_path), "pt") as f:
            m = f.metadata()
        tensors = load_file(str(inputs_path))
        reference = load_file(str(cases / f"{name}.image.safetensors"))["image"]
        cls_name = m.get("class", "FluxPipeline")
        module = importlib.import_module(f"diffusers.pipelines.flux.{MODULES[cls_name]}")
        pipe = getattr(module, cls_name).from_pretrained(pipelines / m["pipeline"], torch_dtype=dtype).to(device)
        pipe.set_progress_bar_config(disable=True)
        height, width = int(m["height"]), int(m["width"])
        latents = tensors["latents"]
        kwargs = dict(prompt=m["prompt"], height=height, width=width, num_inference_steps=int(m["num_inference_steps"]),
                      guidance_scale=float(m.get("guidance_scale", 3.5)), output_type="pt",
                      max_sequence_length=int(m.get("max_sequence_length", 512)),
                      num_images_per_prompt=latents.shape[0])
        for key in ["strength", "true_cfg_scale"]:
            if key in m:
                kwargs[key] = float(m[key])
        if "negative_prompt" in m:
            kwargs["negative_prompt"] = m["negative_prompt"]
        for key in ["image", "mask_image"]:
            if key in tensors:
                kwargs[key] = tensors[key].to(device)
        if cls_name == "FluxKontextPipeline":
            kwargs.update(max_area=height * width, _auto_resize=False)
        if float(m.get("cache_threshold", 0)) > 0:
            apply_first_block_cache(pipe.transformer, FirstBlockCacheConfig(threshold=float(m["cache_threshold"])))
        with torch.no_grad():
            if cls_name in ("FluxPipeline", "FluxKontextPipeline"):
                image = pipe(latents=latents.to(device, dtype), **kwargs).images
            else:
                noise = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
                with patched(module, noise):
                    image = pipe(**kwargs).images
        image = image.float().cpu()
        err = ((image - reference).abs().max() / reference.abs().max()).item()
        print(f"{name:24s} diffusers {str(dtype)[6:]} ({device}) vs the f32 fixture: max rel. error {err:.3e}")
        del pipe
        if device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
