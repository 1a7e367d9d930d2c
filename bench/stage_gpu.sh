#!/usr/bin/env bash
# Stage what a GPU benchmark call needs into .gpu/ (git-ignored): the static fluxserve (stripped, xz-compressed so the
# working tree stays under the device's 64 MiB transfer limit) and the pinned diffusers wheel. Then:
#   run(command: "bash bench/run_gpu_bench.sh", carry: [".gpu"])
# and the run comes back as bench/results/DATE-CARD-RUN/ under the files it returns (see bench/results/README.md).
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
scratch=.build-cuda-static
swift build -c release --static-swift-stdlib --product fluxserve --scratch-path "$scratch"
bin=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)/fluxserve
mkdir -p .gpu/whl
strip -o .gpu/fluxserve "$bin"
xz -6 -f -T2 .gpu/fluxserve
# The image libraries FluxImages opens (run_gpu_edits.sh puts these first on LD_LIBRARY_PATH only if the machine
# lacks its own): Debian bookworm's, which need nothing newer than glibc 2.36 and zlib.
mkdir -p .gpu/lib
for lib in libpng16.so.16 libturbojpeg.so.0 libwebp.so.7; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}' || true)  # awk's early exit may SIGPIPE ldconfig
  [ -n "$path" ] && cp -L "$path" .gpu/lib/ || echo "note: $lib not installed here; not staged"
done
ls .gpu/whl/diffusers-0.42.1-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .gpu/whl diffusers==0.42.1
# peft (and accelerate, which it imports) for tools/reference/bench_lora_diffusers.py: pure-Python wheels.
for pkg in peft==0.21.2 accelerate; do
  name=${pkg%%=*}
  ls .gpu/whl/$name-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .gpu/whl "$pkg"
done
du -sh .gpu
