#!/usr/bin/env bash
# On the GPU machine, from the checkout root (after bench/stage_gpu.sh here): the checks and timings of the
# transformer-performance slice in one call. Logs and JSON go to a dated run folder under $OUT (below).
#   MODE=check (default): selftest with fallback kernels, transformer / text-encoder fixtures, op timings, fluxserve
#     bench (t5, clip, step at 1024², vae), an nsys trace of steps for launch gaps, diffusers' eager step with the
#     shared-weights comparison set, and FluxServe's error against it.
#   MODE=final: selftest and fixtures first (if they fail, the benchmarks run .gpu/fluxserve-call1.xz, the binary the
#     check call verified, when staged, and say so), then fluxserve bench and diffusers bench (eager and torch.compile) of t5,
#     clip and the step at 1024², and the numeric comparison — the results table from one call.
set -uo pipefail
. "$(dirname "$0")/results_folder.sh"
results_folder perf MODE
bin=/tmp/fluxserve
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fluxserve.xz'), open('$bin', 'wb'))" && chmod +x $bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
export FLUXSERVE_CACHE=/tmp/fluxserve-cache PYTHONUNBUFFERED=1
mode=${MODE:-check}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.txt"
cmp() {  # OUT REF NAME: max |out − ref| / max |ref|, limit 2e-2
  python3 - "$@" <<'PY'
import sys
from safetensors.torch import load_file
o, r = load_file(sys.argv[1])[sys.argv[3]].float(), load_file(sys.argv[2])[sys.argv[3]].float()
e = ((o - r).abs().max() / r.abs().max()).item() if o.shape == r.shape else float("inf")
print(f"{'PASS' if e <= 2e-2 else 'FAIL'} {sys.argv[1]} {sys.argv[3]}: max rel err {e:.3e}")
PY
}

checks() {  # selftest and fixtures; returns non-zero on a failure outside conv2d (another slice's work in progress)
  local bad=0
  $bin selftest --device cuda --fallback-kernels > "$out/selftest.log" 2>&1
  echo "selftest exit $?" | tee -a "$out/selftest.log"
  grep -q "passed," "$out/selftest.log" || bad=1
  grep -E "^FAIL" "$out/selftest.log" | grep -qv conv2d && bad=1
  grep -E "^(FAIL|device|compiler|attention:)|passed|attentionInputs|concatenating|randomNormal|T5 shape|causal|\+bias\[|wide|8-wide" "$out/selftest.log"
  for c in Tests/Fixtures/transformer/*/; do
    n=$(basename "$c")
    $bin eval transformer --device cuda --model "${c}diffusers" --inputs "${c}inputs.safetensors" -o "/tmp/$n-d.safetensors" \
      && cmp "/tmp/$n-d.safetensors" "${c}outputs.safetensors" sample
    $bin eval transformer --device cuda --model "${c}flux1.safetensors" --config "${c}diffusers/config.json" \
      --inputs "${c}inputs.safetensors" -o "/tmp/$n-f.safetensors" && cmp "/tmp/$n-f.safetensors" "${c}outputs.safetensors" sample
  done > "$out/fixtures.log" 2>&1
  for c in Tests/Fixtures/text_encoders/*/; do
    n=$(basename "$c"); kind=${n%%_*}
    $bin eval "$kind" --device cuda --model "${c}model" --inputs "${c}inputs.safetensors" -o "/tmp/$n.safetensors" \
      && cmp "/tmp/$n.safetensors" "${c}outputs.safetensors" last_hidden_state
  done >> "$out/fixtures.log" 2>&1
  grep -E "PASS|FAIL" "$out/fixtures.log"
  grep FAIL "$out/fixtures.log" | grep -q -- "-[df].safetensors" && bad=1   # transformer fixtures decide
  return $bad
}

if [ "$mode" = final ]; then
  echo "== checks"
  if ! checks; then
    if [ -f .gpu/fluxserve-call1.xz ]; then
      echo "CHECKS FAILED: benchmarks below run the check call's binary (.gpu/fluxserve-call1.xz)"
      python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fluxserve-call1.xz'), open('$bin', 'wb'))"
    else
      echo "CHECKS FAILED (no .gpu/fluxserve-call1.xz to fall back on): the timings below are of a failing build"
    fi
  fi
  echo "== op timings"; $bin selftest --device cuda --only add --timings 2>&1 | grep time | tee "$out/timings.txt"
fi

if [ "$mode" = check ]; then
  echo "== selftest"
  $bin selftest --device cuda --fallback-kernels > "$out/selftest.log" 2>&1; echo "selftest exit $?" | tee -a "$out/selftest.log"
  grep -E "^(FAIL|device|compiler|attention:)|passed|attentionInputs|concatenating|randomNormal|T5 shape|causal|\+bias\[" "$out/selftest.log"
  echo "== fixtures"
  for c in Tests/Fixtures/transformer/*/; do
    n=$(basename "$c")
    $bin eval transformer --device cuda --model "${c}diffusers" --inputs "${c}inputs.safetensors" -o "/tmp/$n-d.safetensors" \
      && cmp "/tmp/$n-d.safetensors" "${c}outputs.safetensors" sample
    $bin eval transformer --device cuda --model "${c}flux1.safetensors" --config "${c}diffusers/config.json" \
      --inputs "${c}inputs.safetensors" -o "/tmp/$n-f.safetensors" && cmp "/tmp/$n-f.safetensors" "${c}outputs.safetensors" sample
  done 2>&1 | grep -v "^$" | tee "$out/fixtures.log"
  for c in Tests/Fixtures/text_encoders/*/; do
    n=$(basename "$c"); kind=${n%%_*}
    $bin eval "$kind" --device cuda --model "${c}model" --inputs "${c}inputs.safetensors" -o "/tmp/$n.safetensors" \
      && cmp "/tmp/$n.safetensors" "${c}outputs.safetensors" last_hidden_state
  done 2>&1 | tee -a "$out/fixtures.log"
  echo "== op timings"; $bin selftest --device cuda --only add --timings 2>&1 | grep time | tee "$out/timings.log"
  echo "== fluxserve bench"
  $bin bench --model random-dev --device cuda --stages t5,clip,step,vae --sizes 1024x1024 --json "$out/fluxserve.json" \
    2>&1 | tee "$out/fluxserve.log"
  NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
  if [ -n "$NSYS" ]; then
    echo "== nsys: launch gaps in steps at 1024²"
    timeout 150 "$NSYS" profile -t cuda -o /tmp/steps --force-overwrite true $bin bench --model random-dev --device cuda \
      --stages step --sizes 1024x1024 --warmup 1 --repeats 3 > "$out/nsys.log" 2>&1
    "$NSYS" stats -r cuda_gpu_trace -f csv -o /tmp/steps /tmp/steps.nsys-rep >> "$out/nsys.log" 2>&1
    python3 bench/gpu_gaps.py /tmp/steps_cuda_gpu_trace.csv 3 2>&1 | tee "$out/gaps.log"
    "$NSYS" stats -r cuda_gpu_kern_sum -f csv -o /tmp/steps /tmp/steps.nsys-rep >> "$out/nsys.log" 2>&1
    head -30 /tmp/steps_cuda_gpu_kern_sum.csv > "$out/kern_sum.csv" 2>/dev/null
  else
    echo "no nsys on this machine"
  fi
  stages=step; compile=
else
  echo "== fluxserve bench"
  $bin bench --model random-dev --device cuda --stages t5,clip,step --sizes 1024x1024 --json "$out/fluxserve.json" \
    2>&1 | tee "$out/fluxserve.log"
  stages=t5,clip,step; compile=--compile
fi

echo "== diffusers ($stages${compile:+, compile})"
timeout ${DIFFUSERS_LIMIT:-420} python3 tools/reference/bench_diffusers.py --stages "$stages" --sizes 1024x1024 $compile --save /tmp/cmp \
  --compare-layers 2,4 --json "$out/diffusers.json" 2>&1 | grep -v Warning | tee "$out/diffusers.log"
echo "== numbers: fluxserve vs diffusers on the same weights and inputs"
$bin eval transformer --device cuda --model /tmp/cmp/transformer --inputs /tmp/cmp/inputs.safetensors \
  -o /tmp/cmp/fluxserve.safetensors 2>&1 | tee -a "$out/compare.log"
python3 - <<'PY' 2>&1 | tee -a "$out/compare.log"
from safetensors.torch import load_file
ref = load_file("/tmp/cmp/outputs.safetensors"); ours = load_file("/tmp/cmp/fluxserve.safetensors")["sample"]
f32, bf16 = ref["sample_f32"], ref["sample_bf16"]
err = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
print(f"fluxserve vs diffusers f32: {err(ours, f32):.3e}   fluxserve vs diffusers bf16: {err(ours, bf16):.3e}   "
      f"diffusers bf16 vs f32: {err(bf16, f32):.3e}")
PY
