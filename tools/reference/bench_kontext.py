"""diffusers' FluxKontextPipeline timed on the GPU machine, beside `fluxserve generate --image` on the same folder in
the same device call (bench/run_gpu_edits.sh with KONTEXT=1).

Usage: python3 bench_kontext.py PIPELINE_FOLDER IMAGE.png [--steps 28]. Loads the folder in bf16 on CUDA, runs one
2-step warm-up, then the full call three times at 1024² (the image resized to Kontext's preferred resolution, as
the pipeline does by default): prints each call's seconds (encoders + 28 steps + decode) and the median step time
from per-step timestamps (CUDA-synchronised in the step-end callback).
"""
import statistics
import sys
import time

import torch
from diffusers import FluxKontextPipeline
from PIL import Image


def main():
    folder, image_path = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 28
    t0 = time.perf_counter()
    pipe = FluxKontextPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16).to("cuda")
    print(f"diffusers: loaded in {time.perf_counter() - t0:.1f} s")
    image = Image.open(image_path).convert("RGB")
    stamps = []

    def on_step(pipeline, step, timestep, kwargs):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return kwargs

    def call(n):
        generator = torch.Generator("cuda").manual_seed(1)
        return pipe(image=image, prompt="make the sky purple", height=1024, width=1024, num_inference_steps=n,
                    guidance_scale=2.5, generator=generator, callback_on_step_end=on_step).images[0]

    call(2)
    for run in range(3):
        stamps.clear()
        torch.cuda.synchronize()
        start = time.perf_counter()
        call(steps)
        torch.cuda.synchronize()
        total = time.perf_counter() - start
        step = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
        print(f"diffusers FluxKontextPipeline eager run {run + 1}: {total:.2f} s for {steps} steps, "
              f"median step {step * 1000:.1f} ms")
    print(f"diffusers peak memory {torch.cuda.max_memory_allocated() / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
