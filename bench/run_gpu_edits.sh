#!/usr/bin/env bash
# On the GPU machine, from the checkout root (after bench/stage_gpu.sh here; carry .gpu): issue 13's paths on CUDA.
#   1. parity: every pipeline fixture case (text-to-image, img2img, inpainting, Fill inpaint/outpaint, Kontext, true
#      CFG) through `eval pipeline --device cuda`, bf16 and --quantize fp8, against diffusers' f32 image
#      (max |Δ| / max |ref|, the CPU tests' measure; goal ≤ 2e-2 in bf16);
#   2. the command line's edit paths on CUDA (files in, PNG out): img2img, inpainting, outpainting on Fill, Kontext,
#      true CFG, each also with fp8 where the model allows;
#   4. SERVE=1: `fluxserve serve --device cuda --model demo` answering /v1/images/edits (multipart, with and without
#      an alpha mask) and an edit /v1/jobs with a base64 image.
#   (NO_PARITY=1 skips 1 and 2; diffusers' own bf16 error on the same cases is printed after 1, for scale)
#   3. KONTEXT=1: FLUX.1 Kontext at 1024² (4096 generated + 4096 reference tokens), random-dev weights, 28 steps,
#      beside diffusers' FluxKontextPipeline eager on the same folder in the same call.
set -uo pipefail
. "$(dirname "$0")/results_folder.sh"
results_folder edits KONTEXT NO_PARITY SERVE
bin=/tmp/fluxserve
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fluxserve.xz'), open('$bin', 'wb'))" && chmod +x $bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
export FLUXSERVE_CACHE=/tmp/fluxserve-cache PYTHONUNBUFFERED=1 FLUXSERVE_DEMO_MODEL=$PWD/models/demo
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.txt"
echo "image libraries on this machine:"; ldconfig -p | grep -E "libpng16.so.16|libturbojpeg.so.0|libwebp.so.7" \
  | tee "$out/libraries.txt"
# Debian's copies staged beside the binary stand in for any the machine lacks (dlopen searches LD_LIBRARY_PATH).
mkdir -p /tmp/imagelibs
for lib in libpng16.so.16 libturbojpeg.so.0 libwebp.so.7; do
  ldconfig -p | grep -q "$lib " || { cp .gpu/lib/$lib /tmp/imagelibs/ 2>/dev/null && echo "using the staged $lib"; }
done
export LD_LIBRARY_PATH=/tmp/imagelibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

if [ -z "${NO_PARITY:-}" ]; then
echo "== parity: eval pipeline --device cuda against diffusers (f32 reference)"
cases=Tests/Fixtures/pipeline/cases
for inputs in $cases/*.inputs.safetensors; do
  name=$(basename "$inputs" .inputs.safetensors)
  pipeline=$(python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; print(json.loads(f.read(n))['__metadata__']['pipeline'])" "$inputs")
  for q in none fp8; do
    $bin eval pipeline --device cuda --model Tests/Fixtures/pipeline/$pipeline --inputs "$inputs" \
      --quantize $q -o /tmp/$name-$q.safetensors > /tmp/$name-$q.log 2>&1 || { echo "$name $q: FAILED"; tail -3 /tmp/$name-$q.log; continue; }
    NAME=$name Q=$q CASES=$cases python3 - <<'PY'
import os
from safetensors.torch import load_file
name, q = os.environ["NAME"], os.environ["Q"]
ref = load_file(f"{os.environ['CASES']}/{name}.image.safetensors")["image"]
ours = load_file(f"/tmp/{name}-{q}.safetensors")["image"]
err = ((ours - ref).abs().max() / ref.abs().max()).item()
goal = 2e-2 if q == "none" else None
verdict = "" if goal is None else ("  ok" if err <= goal else "  OVER 2e-2")
print(f"{name:24s} {q:4s} max rel. error {err:.3e}{verdict}")
PY
  done
done 2>&1 | tee "$out/parity.log"
echo "== diffusers' own bf16 error on the same cases (CUDA), for scale"
python3 tools/reference/diffusers_bf16_cases.py $cases Tests/Fixtures/pipeline 2>&1 | grep "max rel" \
  | tee "$out/diffusers-bf16.log"

echo "== command line edits on CUDA"
work=/tmp/edits; mkdir -p $work
{
  $bin generate "a red circle" --model demo --device cuda -o $work/source.png --seed 1 2>&1 | tail -1
  python3 - "$work" <<'PY'
import sys, zlib, struct
# A mask for the demo picture (128²): white (repaint) on the right half, and an RGB JPEG-free PNG writer.
w = h = 128
rows = b"".join(b"\x00" + bytes(255 if x >= 64 else 0 for x in range(w) for _ in range(3)) for _ in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1] + "/mask.png", "wb").write(png)
PY
  for q in none fp8; do
    $bin generate "a blue circle" --model demo --device cuda --quantize $q --image $work/source.png --strength 0.8 \
      -o $work/img2img-$q.png --seed 2 2>&1 | tail -1
    $bin generate "a blue square" --model demo --device cuda --quantize $q --image $work/source.png \
      --mask $work/mask.png --strength 1 -o $work/inpaint-$q.png --seed 2 2>&1 | tail -1
    $bin generate "a green triangle" --model demo --device cuda --quantize $q --negative-prompt "a red circle" \
      --true-cfg-scale 3 -o $work/truecfg-$q.png --seed 2 2>&1 | tail -1
  done
  $bin generate "fill the border" --model Tests/Fixtures/pipeline/fill_tiny --device cuda --image $work/source.png \
    --outpaint 16,0,16,32 -o $work/outpaint.png --steps 4 --seed 3 2>&1 | tail -1
  $bin generate "make it blue" --model Tests/Fixtures/pipeline/kontext_tiny --device cuda --image $work/source.png \
    --steps 4 -o $work/kontext.png --seed 4 2>&1 | tail -1
  python3 - "$work" <<'PY'
import sys, struct, zlib, glob, os
def size(path):
    data = open(path, "rb").read()
    return struct.unpack(">II", data[16:24])
for path in sorted(glob.glob(sys.argv[1] + "/*.png")):
    print(f"{os.path.basename(path):20s} {size(path)}")
PY
} 2>&1 | tee "$out/cli.log"
fi

if [ -n "${KONTEXT:-}" ]; then
  echo "== Kontext 1024², 28 steps, random-dev weights: fluxserve and diffusers FluxKontextPipeline eager"
  (cd tools/reference && python3 save_random_pipeline.py /tmp/rdpipe "$OLDPWD/models/demo") 2>&1 | grep -v Warning
  mkdir -p /tmp/kontext
  for part in scheduler text_encoder text_encoder_2 tokenizer tokenizer_2 transformer vae; do
    ln -sfn /tmp/rdpipe/$part /tmp/kontext/$part
  done
  python3 -c "import json; d=json.load(open('/tmp/rdpipe/model_index.json')); d['_class_name']='FluxKontextPipeline'; json.dump(d, open('/tmp/kontext/model_index.json','w'))"
  python3 -c "
import torch; from PIL import Image
g = torch.Generator().manual_seed(0)
x = (torch.rand(1024, 1024, 3, generator=g) * 255).byte().numpy()
Image.fromarray(x).save('/tmp/kontext-in.png')"
  for run in 1 2; do
    $bin generate "make the sky purple" --model /tmp/kontext --device cuda --image /tmp/kontext-in.png --steps 28 \
      -o /tmp/kontext-out-$run.png --seed 1 2>&1 | grep -v "^denoise"
  done
  $bin generate "make the sky purple" --model /tmp/kontext --device cuda --image /tmp/kontext-in.png --steps 28 \
    --quantize fp8 -o /tmp/kontext-out-fp8.png --seed 1 2>&1 | grep -v "^denoise"
  python3 tools/reference/bench_kontext.py /tmp/kontext /tmp/kontext-in.png 2>&1 | grep -v Warning
fi 2>&1 | tee "$out/kontext.log"

if [ -n "${SERVE:-}" ]; then
  echo "== serve --device cuda: /v1/images/edits and an edit job"
  work=/tmp/serve-edits; mkdir -p $work
  $bin generate "a red circle" --model demo --device cuda -o $work/source.png --seed 1 2>&1 | tail -1
  $bin serve --model demo --device cuda --port 18080 --data-dir $work/data > $work/serve.log 2>&1 &
  server=$!
  for _ in $(seq 120); do curl -sf localhost:18080/readyz > /dev/null && break; sleep 1; done
  curl -s localhost:18080/readyz; echo
  python3 - "$work" <<'PY'
import base64, json, struct, sys, time, urllib.request, uuid, zlib
work = sys.argv[1]
def png(w, h, rgba):
    raw = b"".join(b"\x00" + b"".join(bytes(rgba(x, y)) for x in range(w)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
mask = png(128, 128, lambda x, y: (0, 0, 0, 0 if x >= 64 else 255))   # transparent right half = edit
source = open(f"{work}/source.png", "rb").read()
def multipart(fields, files):
    b = uuid.uuid4().hex
    body = b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode() for k, v in fields.items())
    body += b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{k}.png\"\r\nContent-Type: image/png\r\n\r\n".encode() + d + b"\r\n" for k, d in files.items())
    return body + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"
def post(path, body, kind):
    req = urllib.request.Request("http://localhost:18080" + path, data=body, headers={"Content-Type": kind})
    t0 = time.time()
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.status, json.loads(r.read()), time.time() - t0
def sizes(reply):
    out = []
    for item in reply["data"]:
        d = base64.b64decode(item["b64_json"]); out.append(struct.unpack(">II", d[16:24]))
    return out
for label, files in [("img2img", {"image": source}), ("inpainting (alpha mask)", {"image": source, "mask": mask})]:
    body, kind = multipart({"prompt": "a blue circle", "n": "2", "size": "128x128", "response_format": "b64_json",
                            "seed": "3"}, files)
    status, reply, seconds = post("/v1/images/edits", body, kind)
    print(f"/v1/images/edits {label}: {status}, {len(reply['data'])} PNGs of {sizes(reply)} in {seconds:.2f} s")
status, job, _ = post("/v1/jobs", json.dumps({"prompt": "a green square", "image": base64.b64encode(source).decode(),
                                               "strength": 0.7, "steps": 8}).encode(), "application/json")
for _ in range(120):
    with urllib.request.urlopen(f"http://localhost:18080/v1/jobs/{job['id']}") as r:
        job = json.loads(r.read())
    if job["status"] in ("succeeded", "failed", "canceled", "cancelled"):
        break
    time.sleep(0.5)
print(f"/v1/jobs edit (base64 JSON): {status} then {job['status']}, images {len((job.get('result') or {}).get('data', []))}")
PY
  kill $server; wait $server 2>/dev/null
  grep -iE "error|warn" $work/serve.log | head -5
fi 2>&1 | tee "$out/serve.log"
