#!/usr/bin/env bash
# On the GPU machine, from the checkout root (after bench/stage_gpu.sh here): FluxServe's bench and diffusers' on the
# same card in one call, then FluxServe's transformer output against diffusers' bf16 and f32 outputs for the same
# random-dev weights. Logs and JSON go to a dated run folder under $OUT (below).
#   STAGES (default t5,clip,step,vae,image), COMPILE=1 adds torch.compile, LAYERS (default 2,4) bounds the comparison,
#   SELFTEST=1 runs the GPU conformance first, PROFILE=1 adds per-op device times, UNTUNED=1 a step without GEMM tuning,
#   STARTUP=1 the first image from a full-size checkpoint, FP8=1 the step and image with --quantize fp8 (FP8_STAGES)
#   and its numbers against diffusers.
set -uo pipefail
. "$(dirname "$0")/results_folder.sh"
results_folder bench STAGES COMPILE LAYERS SELFTEST PROFILE UNTUNED STARTUP FP8 FP8_STAGES
bin=/tmp/fluxserve
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fluxserve.xz'), open('$bin', 'wb'))" && chmod +x $bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
export FLUXSERVE_CACHE=/tmp/fluxserve-cache PYTHONUNBUFFERED=1
stages=${STAGES:-t5,clip,step,vae,image}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.txt"

echo "== fluxserve: process start to first image, kernel cache cold then warm (demo model)"
export FLUXSERVE_DEMO_MODEL=$PWD/models/demo
for cache in cold warm; do
  t0=$(date +%s.%N)
  $bin generate "a red circle" --model demo --device cuda -o /tmp/demo-$cache.png --seed 1 2>&1 | tail -1
  echo "$cache kernel cache: $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s from process start to PNG"
done 2>&1 | tee "$out/startup.log"

if [ -n "${SELFTEST:-}" ]; then
  echo "== selftest"
  $bin selftest --device cuda > "$out/selftest.log" 2>&1; echo "selftest exit $?"; grep -E "^FAIL|passed|upload:" "$out/selftest.log"
fi

echo "== fluxserve bench (random-dev)"
$bin bench --model random-dev --device cuda --stages "$stages" ${PROFILE:+--profile} --json "$out/fluxserve.json" 2>&1 \
  | tee "$out/fluxserve.log"
if [ -n "${UNTUNED:-}" ]; then
  echo "== fluxserve step with cuBLASLt's first heuristic choice (FLUXSERVE_GEMM_TUNE=0), same machine"
  FLUXSERVE_GEMM_TUNE=0 $bin bench --model random-dev --device cuda --stages step --sizes 1024x1024 \
    --json "$out/fluxserve-untuned.json" 2>&1 | grep -E "transformer-step" | tee "$out/fluxserve-untuned.log"
fi

echo "== diffusers bench (random-dev)"
python3 tools/reference/bench_diffusers.py --stages "$stages" ${COMPILE:+--compile} --save /tmp/cmp \
  --compare-layers "${LAYERS:-2,4}" --json "$out/diffusers.json" 2>&1 | grep -v Warning | tee "$out/diffusers.log"

# compare LABEL [fluxserve flags...]: `eval transformer` on the weights and inputs diffusers saved, and its output
# against diffusers' f32 and bf16 outputs (max |Δ| / max |ref| and mean |Δ| / mean |ref|), beside diffusers' own bf16.
compare() {
  local label=$1; shift
  $bin eval transformer --device cuda --model /tmp/cmp/transformer --inputs /tmp/cmp/inputs.safetensors \
    -o "/tmp/cmp/$label.safetensors" "$@" 2>&1
  LABEL=$label python3 - <<'PY'
import os
from safetensors.torch import load_file
label = os.environ["LABEL"]
ref = load_file("/tmp/cmp/outputs.safetensors"); ours = load_file(f"/tmp/cmp/{label}.safetensors")["sample"]
f32, bf16 = ref["sample_f32"], ref["sample_bf16"]
err = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
mean = lambda a, b: ((a - b).abs().mean() / b.abs().mean()).item()
print(f"{label} vs diffusers f32: max {err(ours, f32):.3e} mean {mean(ours, f32):.3e}   vs diffusers bf16: max "
      f"{err(ours, bf16):.3e}   diffusers bf16 vs f32: max {err(bf16, f32):.3e} mean {mean(bf16, f32):.3e}")
PY
}

echo "== numbers: fluxserve vs diffusers on the same weights and inputs"
[ -f /tmp/cmp/inputs.safetensors ] && compare fluxserve 2>&1 | tee -a "$out/compare.log"

if [ -n "${FP8:-}" ]; then
  echo "== fp8: cuBLASLt's enum values as this machine's header spells them"
  h=$(find / -name cublasLt.h -path "*include*" 2>/dev/null | head -1)
  grep -nE "CUBLASLT_MATMUL_DESC_(A|B)_SCALE_(POINTER|MODE) |CUBLASLT_MATMUL_DESC_FAST_ACCUM |SCALE_OUTER_VEC_32F " "$h" \
    | tee "$out/fp8-header.log"
  echo "== fluxserve bench --quantize fp8 (random-dev)"
  $bin bench --model random-dev --device cuda --quantize fp8 --stages "${FP8_STAGES:-step,image}" ${PROFILE:+--profile} \
    --json "$out/fluxserve-fp8.json" 2>&1 | tee "$out/fluxserve-fp8.log"
  echo "== fp8 step with accumulation promoted to f32 (FLUXSERVE_FP8_FAST_ACCUM=0)"
  FLUXSERVE_FP8_FAST_ACCUM=0 $bin bench --model random-dev --device cuda --quantize fp8 --stages step \
    --sizes 1024x1024 2>&1 | grep -E "transformer-step" | tee -a "$out/fluxserve-fp8.log"
  if [ -f /tmp/cmp/inputs.safetensors ]; then
    for accum in 1 0; do
      FLUXSERVE_FP8_FAST_ACCUM=$accum compare "fp8-fast-accumulation-$accum" --quantize fp8
    done 2>&1 | tee -a "$out/compare.log"
  fi
fi

if [ -n "${STARTUP:-}" ]; then
  echo "== first image from a full-size checkpoint in the page cache (random-dev pipeline folder, 1024², 28 steps)"
  (cd tools/reference && python3 save_random_pipeline.py /tmp/rdpipe "$OLDPWD/models/demo") 2>&1 | grep -v Warning \
    | tee "$out/startup-full.log"
  du -sh /tmp/rdpipe | tee -a "$out/startup-full.log"
  for run in 1 2 ${FP8:+fp8}; do
    t0=$(date +%s.%N)
    $bin generate "a red fox in snow" --model /tmp/rdpipe --device cuda -o /tmp/fox-$run.png --seed 1 \
      ${FP8:+$([ $run = fp8 ] && echo --quantize fp8)} 2>&1 | grep -v "^denoise"
    echo "run $run: $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s from process start to PNG"
  done 2>&1 | tee -a "$out/startup-full.log"
fi
