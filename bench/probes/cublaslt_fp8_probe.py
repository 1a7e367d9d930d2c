#!/usr/bin/env python3
"""Which cuBLASLt fp8 configurations does this GPU's library accept? (run on the GPU machine; torch only for buffers)

For one FLUX-sized product, D (N x M, bf16) = op(A)=W (N x K, e4m3, transposed) · B=X (K x M, e4m3), it asks the
heuristic under each combination of: scale mode (per-tensor scalars, or outer vectors: one f32 per row of W and per
token), whether the scale pointers are set before the heuristic is asked, the epilogue (none, bias) and fast
accumulation (unset, 0, 1). It prints the status, and for accepted ones the error against a torch reference and the
time. Enum values are read from cublasLt.h.
Usage: cublaslt_fp8_probe.py LIBCUBLASLT CUBLASLT_H [N M K]"""
import ctypes as C, re, sys, time, torch

lib = C.CDLL(sys.argv[1]); hdr = open(sys.argv[2]).read()
def enum(name):
    m = re.search(rf"\b{name}\s*=\s*(\d+)", hdr)
    return int(m.group(1))
N, M, K = (int(v) for v in sys.argv[3:6]) if len(sys.argv) > 5 else (3072, 4608, 3072)
lib.cublasLtGetStatusString.restype = C.c_char_p
handle = C.c_void_p(); assert lib.cublasLtCreate(C.byref(handle)) == 0
R_32F, R_16BF, R_E4M3 = 0, 14, 28
torch.manual_seed(0)
w = torch.randn(N, K, device="cuda") * 0.05; x = torch.randn(M, K, device="cuda"); bias = torch.randn(N, device="cuda").bfloat16()
sw = w.abs().amax(1) / 448; sx = x.abs().amax(1) / 448
qw = (w / sw[:, None]).to(torch.float8_e4m3fn); qx = (x / sx[:, None]).to(torch.float8_e4m3fn)
ref = (qx.float() @ qw.float().T) * sx[:, None] * sw[None, :]            # (M, N) row-major = D (N x M) col-major
d = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
ws = torch.empty(32 << 20, device="cuda", dtype=torch.uint8)
one = torch.ones(1, device="cuda")

def attr(desc, name, value, ctype):
    v = ctype(value); return lib.cublasLtMatmulDescSetAttribute(desc, enum(name), C.byref(v), C.sizeof(v))

def layout(dtype, rows, cols, ld):
    l = C.c_void_p(); assert lib.cublasLtMatrixLayoutCreate(C.byref(l), dtype, C.c_uint64(rows), C.c_uint64(cols), C.c_int64(ld)) == 0
    return l

for mode in ("tensor", "outer"):
    for early in (True, False):
        for epilogue in ("none", "bias"):
            for fast in (None, 0, 1):
                desc = C.c_void_p(); assert lib.cublasLtMatmulDescCreate(C.byref(desc), 68, R_32F) == 0
                attr(desc, "CUBLASLT_MATMUL_DESC_TRANSA", 1, C.c_int32)
                status = []
                if mode == "outer":
                    status += [attr(desc, "CUBLASLT_MATMUL_DESC_A_SCALE_MODE", enum("CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F"), C.c_int32),
                               attr(desc, "CUBLASLT_MATMUL_DESC_B_SCALE_MODE", enum("CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F"), C.c_int32)]
                pa, pb = (sw.data_ptr(), sx.data_ptr()) if mode == "outer" else (one.data_ptr(), one.data_ptr())
                def set_pointers():
                    return [attr(desc, "CUBLASLT_MATMUL_DESC_A_SCALE_POINTER", pa, C.c_void_p),
                            attr(desc, "CUBLASLT_MATMUL_DESC_B_SCALE_POINTER", pb, C.c_void_p)]
                if early: status += set_pointers()
                if epilogue == "bias":
                    status += [attr(desc, "CUBLASLT_MATMUL_DESC_EPILOGUE", enum("CUBLASLT_EPILOGUE_BIAS"), C.c_int32),
                               attr(desc, "CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE", R_16BF, C.c_int32),
                               attr(desc, "CUBLASLT_MATMUL_DESC_BIAS_POINTER", bias.data_ptr(), C.c_void_p)]
                if fast is not None: status += [attr(desc, "CUBLASLT_MATMUL_DESC_FAST_ACCUM", fast, C.c_int8)]
                la, lb, ld = layout(R_E4M3, K, N, K), layout(R_E4M3, K, M, K), layout(R_16BF, N, M, N)
                pref = C.c_void_p(); lib.cublasLtMatmulPreferenceCreate(C.byref(pref))
                lim = C.c_uint64(32 << 20); lib.cublasLtMatmulPreferenceSetAttribute(pref, 1, C.byref(lim), 8)
                results = (C.c_uint8 * (96 * 8))(); found = C.c_int(0)
                st = lib.cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, ld, ld, pref, 8, results, C.byref(found))
                label = f"scales={mode:6} pointers-before-heuristic={early!s:5} epilogue={epilogue:4} fast_accum={fast}"
                if st != 0 or found.value == 0:
                    print(f"{label}: heuristic {lib.cublasLtGetStatusString(st).decode()} found {found.value}  (attr statuses {status})")
                    continue
                if not early: set_pointers()
                alpha, beta = C.c_float(1), C.c_float(0)
                def run():
                    return lib.cublasLtMatmul(handle, desc, C.byref(alpha), C.c_void_p(qw.data_ptr()), la, C.c_void_p(qx.data_ptr()), lb,
                                              C.byref(beta), C.c_void_p(d.data_ptr()), ld, C.c_void_p(d.data_ptr()), ld,
                                              results, C.c_void_p(ws.data_ptr()), C.c_size_t(32 << 20), C.c_void_p(torch.cuda.current_stream().cuda_stream))
                r = run(); torch.cuda.synchronize()
                want = ref + (bias.float()[None, :] if epilogue == "bias" else 0)
                if mode == "tensor": want = (qx.float() @ qw.float().T) + (bias.float()[None, :] if epilogue == "bias" else 0)
                err = ((d.float() - want).abs().max() / want.abs().max()).item()
                for _ in range(3): run()
                torch.cuda.synchronize(); t0 = time.perf_counter()
                for _ in range(20): run()
                torch.cuda.synchronize(); ms = (time.perf_counter() - t0) / 20 * 1e3
                print(f"{label}: OK run {r} found {found.value} err {err:.2e} {ms:.3f} ms {2*M*N*K/ms/1e9:.0f} TFLOP/s")
