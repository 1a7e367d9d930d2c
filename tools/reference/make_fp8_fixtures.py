"""Writes the fp8 fixtures (Tests/Fixtures/fp8/) with torch's own float8_e4m3fn conversion.

    e4m3.safetensors    x (f32, N): values around every e4m3 binade, exact grid points and the midpoints between
                        them (ties), subnormals, zero and negatives, plus random normals at several scales, all of
                        magnitude below 448; bits (U8, N): x.to(torch.float8_e4m3fn) viewed as bytes.
    linear.safetensors  the row-wise fp8 linear of FluxServe (Sources/FluxCore/Quantization.swift) computed with
                        torch: x (f32, M x K) with a few outlier channels, w (f32, N x K), b (f32, N);
                        scale_x = amax_row(x) / 448, q_x = (x / scale_x).to(float8_e4m3fn) and the same for w;
                        y = (q_x @ q_w.T) * scale_x[:, None] * scale_w[None, :] + b in f64, stored as f32;
                        q_x, q_w (the e4m3 values as f32) and scale_x, scale_w for the intermediate checks.

torch's conversion rounds to nearest even; beyond 448 it is not saturating (it gives NaN from 480 on), which is why
the fixture stops below 448 and FluxServe's own saturation is tested separately (scaled rows never exceed 448 by
more than a rounding).

Usage: /work/venv-ref/bin/python tools/reference/make_fp8_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures" / "fp8"
E4M3_MAX = 448.0


def grid_values() -> torch.Tensor:
    """Every finite non-negative e4m3 value."""
    bits = torch.arange(0, 0x7F, dtype=torch.uint8)  # 0x7F is NaN
    return bits.view(torch.float8_e4m3fn).float()


def conversion_inputs(gen: torch.Generator) -> torch.Tensor:
    grid = grid_values()
    mids = (grid[1:] + grid[:-1]) / 2                    # exact ties between neighbours
    quarter = grid[:-1] + (grid[1:] - grid[:-1]) / 4     # clearly below a tie
    three = grid[:-1] + 3 * (grid[1:] - grid[:-1]) / 4   # clearly above
    below = torch.nextafter(mids, torch.zeros_like(mids))
    above = torch.nextafter(mids, torch.full_like(mids, 1e9))
    randoms = [torch.randn(400, generator=gen) * s for s in (1e-3, 0.02, 1.0, 30.0, 150.0)]
    values = torch.cat([grid, mids, quarter, three, below, above, *randoms, torch.tensor([0.0, 447.9, 1e-9, 3e-7])])
    values = values[values.abs() < E4M3_MAX]
    signs = torch.where(torch.rand(values.shape, generator=gen) < 0.5, -1.0, 1.0)
    return torch.cat([values, values * signs])


def row_quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    amax = x.abs().amax(dim=1)
    scale = amax / E4M3_MAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = (x / scale[:, None]).to(torch.float8_e4m3fn).float()
    return q, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(8088)

    x = conversion_inputs(gen).float()
    bits = x.to(torch.float8_e4m3fn).view(torch.uint8)
    save_file({"x": x.contiguous(), "bits": bits.contiguous()}, str(args.out / "e4m3.safetensors"),
              metadata={"producer": f"torch {torch.__version__} float8_e4m3fn"})

    m, k, n = 37, 96, 40
    xs = torch.randn(m, k, generator=gen)
    xs[:, 5] *= 40.0                                   # outlier channels, as FLUX activations have
    xs[:, 71] *= -25.0
    xs[3] = 0.0                                        # an all-zero row: scale 1
    w = torch.randn(n, k, generator=gen) * 0.05
    b = torch.randn(n, generator=gen) * 0.1
    qx, sx = row_quantize(xs)
    qw, sw = row_quantize(w)
    y = (qx.double() @ qw.double().T) * sx.double()[:, None] * sw.double()[None, :] + b.double()[None, :]
    save_file({"x": xs, "w": w, "b": b, "q_x": qx, "q_w": qw, "scale_x": sx, "scale_w": sw, "y": y.float()},
              str(args.out / "linear.safetensors"), metadata={"producer": f"torch {torch.__version__}"})
    print(f"wrote {args.out}: {x.numel()} conversions, linear {m}x{k} · {n}x{k}")


if __name__ == "__main__":
    main()
