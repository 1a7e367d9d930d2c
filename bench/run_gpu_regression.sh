#!/usr/bin/env bash
# On the GPU machine, from the checkout root: the GPU conformance of this binary, then the 1024² transformer step of
# this binary and of an earlier one (bf16 and fp8), alternating in one call so both see the same card and clocks.
#   Stage here first: both stripped static binaries (bench/stage_gpu.sh here and in a checkout of the earlier commit)
#   in one .gpu/pair.tar.xz holding fluxserve and fluxserve-old: compressed together (xz, 192 MiB dictionary) the two
#   take 22 MB instead of 38, which keeps the call under the device's 64 MiB transfer limit. Logs go to $OUT.
#   ROUNDS (default 2) alternations per precision.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
python3 -c "import lzma, tarfile; tarfile.open(fileobj=lzma.open('.gpu/pair.tar.xz')).extractall('/tmp')"
chmod +x /tmp/fluxserve /tmp/fluxserve-old
export FLUXSERVE_CACHE=/tmp/fluxserve-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.txt"

echo "== selftest (this binary)"
/tmp/fluxserve selftest --device cuda > "$out/selftest.log" 2>&1; echo "selftest exit $?"
grep -E "^FAIL|passed" "$out/selftest.log"

echo "== demo image on the GPU (this binary)"
/tmp/fluxserve generate "a red circle" --model models/demo --device cuda -o "$out/demo-gpu.png" --seed 1 2>&1 | tail -2

for precision in none fp8; do
  for round in $(seq "${ROUNDS:-2}"); do
    for name in fluxserve-old fluxserve; do
      /tmp/$name bench --model random-dev --device cuda --stages step --sizes 1024x1024 --quantize $precision \
        --json "$out/$name-$precision-$round.json" > "$out/$name-$precision-$round.log" 2>&1
      echo "$name quantize=$precision round $round: $(grep -E 'transformer-step' "$out/$name-$precision-$round.log" | head -1)"
    done
  done
done 2>&1 | tee "$out/steps.log"
