#!/usr/bin/env bash
# On the GPU machine, from the checkout root (after bench/stage_gpu.sh here; carry .gpu): issue 14's LoRAs on CUDA.
#   1. parity: every LoRA fixture case (7 formats alone, a 0.7 scale, stacks of two and three with negative weights)
#      through `eval transformer` and `eval pipeline --device cuda` on the tiny dev pipeline, LoRAs merged and run
#      beside the weights, bf16 and --quantize fp8, against diffusers + peft's f32 output (max |Δ| / max |ref|, the
#      CPU tests' measure; goal ≤ 2e-2 in bf16);
#   2. bench: random-dev at 1024², a random rank-16 LoRA on every attention and MLP projection: step without it,
#      beside the weights, merged, and switching between two sets; bf16 and fp8; then diffusers + peft on the same
#      layers in the same call (tools/reference/bench_lora_diffusers.py).
#   (NO_PARITY=1 skips 1, NO_BENCH=1 skips 2)
set -uo pipefail
. "$(dirname "$0")/results_folder.sh"
results_folder lora NO_PARITY NO_BENCH
bin=/tmp/fluxserve
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fluxserve.xz'), open('$bin', 'wb'))" && chmod +x $bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
export FLUXSERVE_CACHE=/tmp/fluxserve-cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.txt"
lora=Tests/Fixtures/lora

if [ -z "${NO_PARITY:-}" ]; then
echo "== parity: eval transformer / eval pipeline --device cuda with --lora, against diffusers + peft (f32)"
for expected in $lora/cases/*.transformer.safetensors; do
  name=$(basename "$expected" .transformer.safetensors)
  args=$(python3 - "$expected" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
for e in json.loads(json.loads(f.read(n))["__metadata__"]["loras"]):
    print(f"--lora Tests/Fixtures/lora/{e['file']}:{e['scale']}", end=" ")
PY
)
  for mode in merge beside; do
    for q in none fp8; do
      tag=$name-$mode-$q
      $bin eval transformer --device cuda --model Tests/Fixtures/pipeline/dev_tiny --inputs $lora/transformer_inputs.safetensors \
        $args --lora-mode $mode --quantize $q -o /tmp/$tag.t.safetensors > /tmp/$tag.t.log 2>&1 \
        || { echo "$tag transformer: FAILED"; tail -3 /tmp/$tag.t.log; continue; }
      $bin eval pipeline --device cuda --model Tests/Fixtures/pipeline/dev_tiny --inputs $lora/cases/$name.inputs.safetensors \
        $args --lora-mode $mode --quantize $q -o /tmp/$tag.p.safetensors > /tmp/$tag.p.log 2>&1 \
        || { echo "$tag pipeline: FAILED"; tail -3 /tmp/$tag.p.log; continue; }
      TAG=$tag NAME=$name Q=$q LORA=$lora python3 - <<'PY'
import os
from safetensors.torch import load_file
tag, name, q, lora = os.environ["TAG"], os.environ["NAME"], os.environ["Q"], os.environ["LORA"]
def err(ours, ref): return ((ours - ref).abs().max() / ref.abs().max()).item()
t = err(load_file(f"/tmp/{tag}.t.safetensors")["sample"], load_file(f"{lora}/cases/{name}.transformer.safetensors")["sample"])
p = err(load_file(f"/tmp/{tag}.p.safetensors")["image"], load_file(f"{lora}/cases/{name}.image.safetensors")["image"])
verdict = "" if q != "none" else ("  ok" if max(t, p) <= 2e-2 else "  OVER 2e-2")
print(f"{tag:36s} sample {t:.3e}  image {p:.3e}{verdict}")
PY
    done
  done
done 2>&1 | tee "$out/parity.log"
fi

if [ -z "${NO_BENCH:-}" ]; then
echo "== bench: random-dev 1024², rank-16 LoRA on every attention and MLP projection"
for q in none fp8; do
  $bin bench --device cuda --model random-dev --stages step --sizes 1024x1024 --lora-rank 16 --quantize $q \
    --repeats 7 --warmup 2 --json "$out/bench-$q.json" 2>&1 | grep -vE "^loaded" | tee "$out/bench-$q.log"
done
(cd tools/reference && python3 bench_lora_diffusers.py --rank 16 --size 1024x1024) 2>&1 | grep -v Warning \
  | tee "$out/diffusers.log"
fi
