"""FlowMatchEulerDiscreteScheduler fixtures: the sigmas and timesteps FluxPipeline computes, and one Euler step.

For several step counts, image sizes and the FLUX.1-dev / -schnell scheduler configs, runs the same code path as
`FluxPipeline.__call__` (np.linspace sigmas, `calculate_shift` mu, `scheduler.set_timesteps(sigmas=..., mu=...)`) and
records `scheduler.sigmas`, `scheduler.timesteps` and the per-step `timestep / 1000` the transformer receives.
Writes Tests/Fixtures/scheduler/cases.json. Deterministic; run with the pinned venv (tools/reference/README.md).
"""
import json
import pathlib

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "scheduler"

# The scheduler_config.json of the published repositories (FLUX.1-dev, FLUX.1-schnell), plus a linear-shift variant.
CONFIGS = {
    "dev": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                base_image_seq_len=256, max_image_seq_len=4096),
    "schnell": dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False, base_shift=0.5, max_shift=1.15,
                    base_image_seq_len=256, max_image_seq_len=4096),
    "shifted_static": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False),
    "dev_linear_terminal": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
                                time_shift_type="linear", shift_terminal=0.05),
}


def case(name, config, steps, height, width):
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    image_seq_len = (height // 16) * (width // 16)
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_shift(image_seq_len, scheduler.config.get("base_image_seq_len", 256),
                         scheduler.config.get("max_image_seq_len", 4096), scheduler.config.get("base_shift", 0.5),
                         scheduler.config.get("max_shift", 1.15))
    scheduler.set_timesteps(sigmas=sigmas, mu=mu)
    # One Euler step on fixed data, as the pipeline runs it (float32).
    g = torch.Generator().manual_seed(steps * 7 + height)
    sample = torch.randn(1, 4, 3, generator=g)
    velocity = torch.randn(1, 4, 3, generator=g)
    t0 = scheduler.timesteps[0]
    stepped = scheduler.step(velocity, t0, sample, return_dict=False)[0]
    return {
        "name": name, "config": config, "steps": steps, "height": height, "width": width,
        "image_seq_len": image_seq_len, "mu": mu,
        "sigmas": scheduler.sigmas.tolist(), "timesteps": scheduler.timesteps.tolist(),
        "model_timesteps": [(t.expand(1).to(torch.float32) / 1000).item() for t in scheduler.timesteps],
        "step_sample": sample.flatten().tolist(), "step_velocity": velocity.flatten().tolist(),
        "step_result": stepped.flatten().tolist(),
    }


def main():
    cases = []
    for name, config in CONFIGS.items():
        for steps, height, width in [(1, 256, 256), (4, 1024, 1024), (20, 128, 128), (28, 1024, 1024),
                                     (28, 768, 1360), (50, 512, 512), (7, 2048, 1024)]:
            if steps == 1 and "shift_terminal" in config:
                continue  # one step has no terminal to stretch to: diffusers divides by zero
            cases.append(case(name, config, steps, height, width))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {len(cases)} scheduler cases to {OUT / 'cases.json'}")


if __name__ == "__main__":
    main()
