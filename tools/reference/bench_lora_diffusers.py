"""diffusers + peft LoRA timings on the GPU machine, beside `fluxserve bench --lora-rank` in the same device call.

FLUX.1-dev's transformer with seeded random bf16 weights on the GPU (bench_diffusers.build), then two random rank-R
peft adapters ("a", "b") on every attention and MLP projection of the blocks — the same layers `fluxserve bench
--lora-rank` adapts: to_q/k/v, to_out.0, add_q/k/v_proj, to_add_out, ff(_context).net.0.proj / .2 of the double
blocks; to_q/k/v, proj_mlp, proj_out of the single blocks. Times (CUDA events, medians): a step without adapters,
a step with one adapter active (peft's unmerged layers: W·x + B(A·x)), switching the active adapter
(`set_adapters`), and diffusers' merge path (`fuse_lora` then `unfuse_lora`). Prints one line per stage.

Pinned: diffusers 0.42.1 and peft 0.21.2 (carried as wheels), torch as on the GPU machine.
"""
import argparse
import time

import torch
from diffusers import FluxTransformer2DModel
from peft import LoraConfig

from bench_diffusers import CLIP_L, DEV, bench, build, image_ids, pack  # noqa: F401  (same weights recipe)

TARGETS = (r"^(transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
           r"|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2))"
           r"|single_transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v)|proj_mlp|proj_out))$")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--size", default="1024x1024")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    w, h = (int(v) for v in a.size.split("x"))
    transformer = build(FluxTransformer2DModel, DEV, 1, kw=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    txt = torch.randn(1, 512, 4096, device="cuda", dtype=torch.bfloat16, generator=g)
    pooled = torch.randn(1, 768, device="cuda", dtype=torch.bfloat16, generator=g)
    img = torch.randn(1, 16, h // 8, w // 8, device="cuda", dtype=torch.bfloat16, generator=g)
    x, ids, txt_ids = pack(img), image_ids(h // 8, w // 8), torch.zeros(512, 3, device="cuda")
    t = torch.full((1,), 0.5, device="cuda", dtype=torch.bfloat16)
    guidance = torch.full((1,), 3.5, device="cuda")

    def step():
        return transformer(hidden_states=x, encoder_hidden_states=txt, pooled_projections=pooled, timestep=t,
                           img_ids=ids, txt_ids=txt_ids, guidance=guidance, return_dict=False)[0]

    def record(stage, fn, repeats=None):
        median, best = bench(fn, a.warmup, repeats or a.repeats)
        print(f"diffusers {stage:24s} {a.size:10s} median {median:9.2f} ms   min {best:9.2f} ms", flush=True)

    with torch.no_grad():
        record("transformer-step", step)
        for name, seed in (("a", 11), ("b", 12)):
            transformer.add_adapter(LoraConfig(r=a.rank, lora_alpha=a.rank, target_modules=TARGETS), adapter_name=name)
            gen = torch.Generator(device="cuda").manual_seed(seed)
            for module_name, param in transformer.named_parameters():
                if f"lora_B.{name}" in module_name or f"lora_A.{name}" in module_name:
                    param.normal_(0, 0.02 if "lora_B" in module_name else param.shape[1] ** -0.5, generator=gen)
        adapted = sum(1 for n, _ in transformer.named_modules() if n.endswith("lora_A.a"))
        print(f"diffusers peft adapters: rank {a.rank} on {adapted} layers each")
        transformer.set_adapters(["a"], [1.0])
        record("step-lora-beside", step)
        names = iter(["b", "a"] * 100)
        record("lora-switch", lambda: transformer.set_adapters([next(names)], [1.0]))
        transformer.set_adapters(["a"], [1.0])
        start = time.time()
        transformer.fuse_lora(lora_scale=1.0, adapter_names=["a"])
        torch.cuda.synchronize()
        fuse = time.time() - start
        record("step-lora-merged", step)
        start = time.time()
        transformer.unfuse_lora()
        torch.cuda.synchronize()
        print(f"diffusers fuse_lora {fuse:.3f} s, unfuse_lora {time.time() - start:.3f} s")


if __name__ == "__main__":
    main()
