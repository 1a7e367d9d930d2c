/// Activation functions, applied alone or fused into a `linear` epilogue.
public enum Activation: String, Sendable, CaseIterable {
    case identity
    /// x · σ(x)
    case silu
    /// GELU, tanh approximation: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) — FLUX MLPs, T5 gated-GELU.
    case geluTanh
    /// GELU, exact: 0.5x(1 + erf(x/√2)).
    case gelu
    /// x · σ(1.702x) — CLIP.
    case quickGelu
}

/// The op set every model is written against. One implementation per device (`CPUBackend`, `CUDABackend`).
///
/// Conventions: tensors are dense row-major; "last axis" ops treat the tensor as rows of its last dimension; float
/// ops compute in f32 whatever the storage dtype.
///
/// Checked and unchecked names. Callers (model code, tests, tools) call the op by its plain name —
/// `backend.linear(x, weight:, bias:, activation:)` — a public method in `extension Backend` (`CheckedOps.swift`)
/// that checks the operands once with `OpShapes` and throws `TensorError.shapeMismatch` naming the op and the
/// operand, identically on every backend, so a wrong checkpoint is an error, never a crash. It then calls the
/// protocol requirement of the same name prefixed `unchecked` (`uncheckedLinear`), which a backend implements and
/// which may assume the operand rules written in its doc comment below; it only checks what is its own (dtypes,
/// storage, device limits such as a maximum head dim). Nothing outside a backend calls an `unchecked…` method.
/// `upload`, `download` and `synchronize` have no operands to check and keep their plain names.
///
/// Basic and fused ops. A basic op (MARK sections below) is implemented by every backend. A fused op (`MARK: Fused
/// ops`) has a default implementation, the composition of basic ops it stands for, written once in `FusedOps`
/// (`FusedOps.swift`); a backend implements its `unchecked…` requirement only where it fuses the work, and
/// `BackendConformance` compares each such override with the composition run on the same backend. The CPU backend,
/// the reference, overrides none.
public protocol Backend: AnyObject, Sendable {
    /// Short name for messages: `cpu`, `cuda:0`.
    var name: String { get }

    // MARK: Memory and ordering

    /// Copies a host tensor into backend memory, converting to the backend's compute dtype (f32 on CPU, bf16 on GPU).
    func upload(_ host: HostTensor) throws -> Tensor
    /// Copies a tensor back to the host as f32 (waits for the ops that make it).
    func download(_ tensor: Tensor) throws -> HostTensor
    /// Waits until every op queued so far has finished: for timing code, never needed for correctness (a backend
    /// that runs ops as they are called, like the CPU, returns at once).
    func synchronize() throws

    // MARK: Matrix products

    /// `x (..., K) · weightᵀ + bias`, then `activation`. weight (N, K) as stored by PyTorch `Linear`, bias (N).
    /// Result (..., N).
    func uncheckedLinear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor

    /// The rows of x (..., K), rank ≥ 1, quantized to e4m3 with one f32 scale per row (`Quantization.swift`): the
    /// input side of an fp8 product. values (..., K), scales (rows).
    func uncheckedQuantizeRows(_ x: Tensor) throws -> QuantizedRows
    /// The fp8 product: `y[m, n] = act(Σₖ q(x)[m, k] · q(w)[n, k] · scale_x[m] · scale_w[n] + bias[n])`, e4m3 products
    /// accumulated in f32. x (..., K) quantized with one scale per row, weight (N, K) with scales (N) → (..., N).
    func uncheckedLinear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation) throws
        -> Tensor

    /// Scaled dot-product attention per head. q (B, Sq, H, D), k and v (B, Sk, H, D) → (B, Sq, H, D).
    /// `softmax(q·kᵀ·scale + bias (+ causal mask)) · v`; bias (H, Sq, Sk) is shared over the batch (T5's relative
    /// position bias); `causal` masks key j > query i (CLIP).
    func uncheckedAttention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws
        -> Tensor

    // MARK: Normalisation (over the last axis)

    /// `(x − mean) / √(var + eps) · weight + bias`; x rank ≥ 1, weight and bias (D) optional (FLUX uses neither).
    func uncheckedLayerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor
    /// `x / √(mean(x²) + eps) · weight`; x rank ≥ 1, weight (D) optional. On (B, S, H, D) this is FLUX's per-head
    /// q/k norm.
    func uncheckedRmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor
    /// AdaLN: `layerNorm(x)·(1 + scale) + shift`, x (B, S, D), shift and scale (B, D) broadcast over S.
    func uncheckedModulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor

    // MARK: Elementwise

    func uncheckedActivation(_ x: Tensor, _ kind: Activation) throws -> Tensor
    /// `a + b`, same shapes.
    func uncheckedAdd(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// `a · b`, same shapes.
    func uncheckedMultiply(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// `residual + gate[:, None, :] · x`; residual and x (B, S, D), gate (B, D).
    func uncheckedGatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor

    // MARK: Layout

    /// Joins tensors of equal shape except along `axis` (in range; negative counts from the end); at least one.
    func uncheckedConcat(_ parts: [Tensor], axis: Int) throws -> Tensor
    /// `x[..., start ..< start + count, ...]` along `axis` (in range; negative counts from the end), copied or, where
    /// the elements are one aligned run, a view (`Tensor.contiguousSlice`).
    func uncheckedSlice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor

    /// `x[..., i, ...]` rearranged so output axis k is input axis `order[k]` (as `torch.permute`), copied. `order`
    /// is a permutation of x's axes.
    func uncheckedPermute(_ x: Tensor, _ order: [Int]) throws -> Tensor
    /// Rows of `table` (V, D) picked by `ids` (as many as `shape` holds, values in 0..<V) → (shape..., D). Token
    /// embeddings.
    func uncheckedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor

    // MARK: Scalars and reductions

    /// `x · scale + shift` with scalar scale and shift (latent scaling, image range changes).
    func uncheckedScaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor
    /// `a + scale · b`, same shapes (the Euler step `x + (σₙ₊₁ − σₙ)·v`, differences of residuals).
    func uncheckedAddScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor
    /// `Σ |x|` over every element, returned to the host (First Block Cache's relative L1 change).
    func uncheckedAbsSum(_ x: Tensor) throws -> Float

    // MARK: Images (NCHW, as PyTorch)

    /// 2-D cross-correlation as `torch.nn.Conv2d`: x (B, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout),
    /// zero padding per side, equal stride on both axes → (B, Cout, Ho, Wo), Ho = (H + top + bottom − kh) / stride + 1
    /// ≥ 1 (`OpShapes.Convolution` computes the geometry).
    func uncheckedConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) throws -> Tensor
    /// `torch.nn.GroupNorm` then `activation`: x (B, C, ...) normalised over each group of C/groups channels and
    /// all positions; weight and bias (C).
    func uncheckedGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                            activation: Activation) throws -> Tensor
    /// Nearest-neighbour upsampling by an integer factor ≥ 1: (B, C, H, W) → (B, C, H·factor, W·factor).
    func uncheckedUpsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor

    // MARK: Fused ops (default: the composition in `FusedOps`)

    /// `linear(concat(parts, axis: -1), weight:, bias:, activation:)` without materialising the concatenation:
    /// parts (..., Kᵢ) of equal leading shape, weight (N, ΣKᵢ), bias (N) → (..., N). FLUX's single block runs
    /// `linear2` over [attention; gelu(mlp)] this way. A backend may sum the parts' products in storage precision
    /// (the GPU accumulates bf16 partial sums when `activation` is identity: one more rounding of a partial).
    func uncheckedLinear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation) throws
        -> Tensor
    /// `quantizeRows(concat(parts, axis: -1))`: parts (..., Kᵢ) of equal leading shape, without materialising the
    /// concatenation where the backend can (the fp8 `linear2` of the single blocks).
    func uncheckedQuantizeRows(concatenating parts: [Tensor]) throws -> QuantizedRows
    /// `quantizeRows(modulatedLayerNorm(x, shift:, scale:, eps:))` (x (B, S, D), shift and scale (B, D)), in one pass
    /// where the backend can (the quantization then reads the f32 normalised values).
    func uncheckedModulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> QuantizedRows
    /// FLUX attention inputs from fused projections (BFL `SelfAttention`'s
    /// `rearrange(qkv, "B L (K H D) -> K B H L D")`, `QKNorm`, then `apply_rope`, with the streams concatenated).
    /// Stream i: `qkv` (B, Sᵢ, 3·H·D) holds q, k and v as consecutive blocks of H·D channels, head h at h·D in each.
    /// q and k get the per-head RMSNorm `x / √(mean(x²) + eps) · scale` (queryScale, keyScale (D)), then the rotary
    /// embedding at their joint position: for pair i of each head, `(x₂ᵢ, x₂ᵢ₊₁) ← (x₂ᵢ cosᵢ − x₂ᵢ₊₁ sinᵢ,
    /// x₂ᵢ₊₁ cosᵢ + x₂ᵢ sinᵢ)` (FLUX/diffusers `use_real_unbind_dim=-1`); v is copied. Streams are joined along the
    /// sequence in order (FLUX: text, then image), so stream i lands at positions S₀ + … + Sᵢ₋₁. cos and sin
    /// (ΣSᵢ, D/2); D even. Returns q, k, v, each (B, ΣSᵢ, H, D). (No model needs the rotation alone, so it is not a
    /// basic op: the composition writes it with `embedding`, `slice`, `multiply`, `add` and `concat`.)
    func uncheckedAttentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor) throws
        -> AttentionHeads
}

/// One stream's input to `Backend.attentionInputs`: its fused q/k/v projection (B, S, 3·H·D) and the RMSNorm
/// scales (D) of its queries and keys.
public struct QKVProjection: Sendable {
    public var qkv: Tensor
    public var queryScale: Tensor
    public var keyScale: Tensor

    public init(qkv: Tensor, queryScale: Tensor, keyScale: Tensor) {
        (self.qkv, self.queryScale, self.keyScale) = (qkv, queryScale, keyScale)
    }
}

/// Query, key and value heads for `Backend.attention`, each (B, S, H, D).
public struct AttentionHeads: Sendable {
    public var q: Tensor
    public var k: Tensor
    public var v: Tensor

    public init(q: Tensor, k: Tensor, v: Tensor) { (self.q, self.k, self.v) = (q, k, v) }
}

/// Zero padding on each side of an image, in pixels.
public struct Padding2D: Sendable, Equatable {
    public var top: Int, bottom: Int, left: Int, right: Int

    public init(top: Int, bottom: Int, left: Int, right: Int) {
        (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
    }

    /// The same padding on every side (`Conv2d(padding=p)`).
    public static func all(_ p: Int) -> Padding2D { Padding2D(top: p, bottom: p, left: p, right: p) }
}

