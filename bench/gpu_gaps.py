#!/usr/bin/env python3
"""gpu_gaps.py TRACE.csv [STEPS]: GPU idle time inside the last STEPS transformer steps of an nsys trace.

TRACE.csv is `nsys stats -r cuda_gpu_trace -f csv` of `fluxserve bench --stages step` (one size). The bench reads one
scalar back after every run (`abs_sum_bf16`), so those kernels delimit the steps: a step spans from the end of one
abs_sum to the end of the next. For each of the last STEPS steps: wall time on the GPU timeline, time with a kernel or
copy running (overlaps merged), the idle rest, and the number of launches."""
import csv, sys

rows = []
with open(sys.argv[1], newline="") as f:
    for r in csv.DictReader(f):
        start = int(float(r.get("Start (ns)") or r.get("Start") or 0))
        duration = int(float(r.get("Duration (ns)") or r.get("Duration") or 0))
        name = r.get("Name") or r.get("Kernel Name") or ""
        rows.append((start, start + duration, name))
rows.sort()
marks = [end for start, end, name in rows if "abs_sum_bf16" in name]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
if len(marks) < steps + 1:
    raise SystemExit(f"only {len(marks)} abs_sum kernels in the trace")
for a, b in zip(marks[-steps - 1:-1], marks[-steps:]):
    inside = [(s, e) for s, e, _ in rows if s >= a and e <= b]
    busy, cursor = 0, a
    for s, e in inside:
        if e > cursor:
            busy += e - max(s, cursor)
            cursor = e
    wall = b - a
    print(f"step: wall {wall / 1e6:8.2f} ms   busy {busy / 1e6:8.2f} ms   idle {(wall - busy) / 1e6:6.2f} ms "
          f"({100 * (wall - busy) / wall:4.1f} %)   {len(inside)} kernels/copies")
