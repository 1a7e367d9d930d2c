#!/usr/bin/env python3
"""Times numpy's f32 matrix product C = A·B for A (M×K), B (K×N) and prints one JSON line.

Usage: numpy_gemm.py M N K [REPEATS]

The reference beside `fluxserve bench-cpu`: warm-up, then the median of REPEATS timed products.
Output: {"gflops": (median), "best_gflops": (fastest run), "seconds": (median), "numpy": version,
         "blas": name, "threads": n, "coretype": kernel}  -- the last three null without threadpoolctl
"""
import json
import statistics
import sys
import time

import numpy as np


def blas_info():
    """Name, thread count and CPU kernel of the BLAS numpy uses, when threadpoolctl is present."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None, None, None
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return pool.get("internal_api"), pool.get("num_threads"), pool.get("architecture")
    return None, None, None


def main(argv):
    if len(argv) < 4:
        print("usage: numpy_gemm.py M N K [REPEATS]", file=sys.stderr)
        return 2
    m, n, k = (int(x) for x in argv[1:4])
    repeats = int(argv[4]) if len(argv) > 4 else 5
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    name, threads, coretype = blas_info()
    print(json.dumps({
        "gflops": 2.0 * m * n * k / seconds / 1e9,
        "best_gflops": 2.0 * m * n * k / min(times) / 1e9,
        "seconds": seconds,
        "numpy": np.__version__,
        "blas": name,
        "threads": threads,
        "coretype": coretype,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
