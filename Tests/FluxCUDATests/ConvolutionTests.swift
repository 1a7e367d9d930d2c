import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// The cuDNN convolution plumbing up to what needs a GPU: settings, shapes and strides, and every graph conv2d can
/// build (both layouts, the three bias modes, asymmetric padding, stride 2, 1×1, odd channel counts) finalized by
/// cuDNN itself. Needs libcudnn.so.9 only (in the standard folders or on the loader path); reported as skipped
/// without it.
/// The numbers are checked on the device by `fluxserve selftest --device cuda` (conv2d cases against the CPU).
@Suite struct ConvolutionTests {
    typealias Shape = CuDNNConvolution.Shape

    static func shape(_ x: [Int], _ w: [Int], stride: Int = 1, padding p: (Int, Int, Int, Int)) -> Shape {
        Shape(batch: x[0], channels: x[1], height: x[2], width: x[3], outChannels: w[0], kernelHeight: w[2],
              kernelWidth: w[3], stride: stride, top: p.0, bottom: p.1, left: p.2, right: p.3)
    }

    @Test func settingsParse() throws {
        #expect(try ConvolutionSettings(parsing: "", option: "--conv") == ConvolutionSettings())
        #expect(try ConvolutionSettings(parsing: "im2col", option: "--conv").enabled == false)
        let nhwc = try ConvolutionSettings(parsing: " NHWC , fused,first,configs=5,nortc", option: "--conv")
        #expect(nhwc.layouts == [.nhwc])
        #expect(nhwc.biasModes == [.fused])
        #expect(nhwc.tune == false && nhwc.runtimeCompiled == false && nhwc.configsPerGraph == 5)
        #expect(try ConvolutionSettings(parsing: "nchw,accumulate", option: "--conv").biasModes == [.accumulate])
        #expect(throws: CUDAOptionError.self) { try ConvolutionSettings(parsing: "nhcw", option: "--conv") }
        #expect(throws: CUDAOptionError.self) { try ConvolutionSettings(parsing: "configs=0", option: "--conv") }
        do {
            _ = try ConvolutionSettings(parsing: "nchw,nhcw", option: "FLUXSERVE_CONV")
            Issue.record("'nhcw' accepted")
        } catch {
            #expect("\(error)".hasPrefix("FLUXSERVE_CONV 'nhcw': expected auto, im2col"), "\(error)")
        }
    }

    /// The `config:` line's words parse back to the same settings.
    @Test func summaryParsesBack() throws {
        for text in ["", "auto", "im2col", "nchw,first", "nhwc,nchw,accumulate,nortc,configs=5", "fused"] {
            let settings = try ConvolutionSettings(parsing: text, option: "--conv")
            #expect(try ConvolutionSettings(parsing: settings.summary, option: "--conv") == settings, "\(text) → \(settings.summary)")
        }
        #expect(ConvolutionSettings().summary == "auto")
        #expect(try ConvolutionSettings(parsing: "off", option: "--conv").summary == "im2col")
    }

    @Test func shapesAndStrides() {
        // The encoder's downsample: pad bottom and right only, stride 2.
        let down = Self.shape([1, 4, 10, 7], [6, 4, 3, 3], stride: 2, padding: (0, 1, 0, 1))
        #expect(down.outHeight == 5 && down.outWidth == 3)
        #expect(down.flops == 2 * 6 * 15 * 36)
        #expect(down.strides(.x, .nchw) == [280, 70, 7, 1])
        #expect(down.strides(.x, .nhwc) == [280, 1, 28, 4])
        #expect(down.strides(.w, .nhwc) == [36, 1, 12, 4])
        #expect(down.strides(.y, .nchw) == [90, 15, 3, 1])
        #expect(Shape.nhwcChannels(3) == 8 && Shape.nhwcChannels(8) == 8 && Shape.nhwcChannels(513) == 520)
    }

    @Test(.requires("libcudnn", GPUAvailability.cuDNN)) func everyGraphFinalizes() throws {
        let api = try CuDNNConvolution(try CuDNN())
        let shapes = [
            Self.shape([1, 128, 64, 64], [128, 128, 3, 3], padding: (1, 1, 1, 1)),   // the VAE's common conv
            Self.shape([2, 3, 9, 11], [5, 3, 3, 3], padding: (1, 1, 1, 1)),          // odd everything, batch 2
            Self.shape([1, 4, 10, 7], [6, 4, 3, 3], stride: 2, padding: (0, 1, 0, 1)),  // Downsample2D
            Self.shape([1, 24, 9, 10], [16, 24, 1, 1], padding: (0, 0, 0, 0)),       // conv_shortcut (1×1)
            Self.shape([1, 128, 16, 16], [3, 128, 3, 3], padding: (1, 1, 1, 1)),     // conv_out: 3 channels
        ]
        for s in shapes {
            for layout in CuDNNConvolution.Layout.allCases {
                var shape = s
                if layout == .nhwc {
                    shape.channels = Shape.nhwcChannels(s.channels)
                    shape.outChannels = Shape.nhwcChannels(s.outChannels)
                }
                for bias in [CuDNNConvolution.BiasMode.none, .fused, .accumulate] {
                    // No handle: cuDNN 9 finalizes a graph without one (heuristics need the GPU).
                    let graph = try CuDNNConvolution.Graph(api, shape: shape, layout: layout, bias: bias, handle: nil)
                    #expect(graph.shape == shape && graph.bias == bias)
                }
            }
        }
    }

    @Test(.requires("libcudnn", GPUAvailability.cuDNN)) func mismatchedOutputIsATypedError() throws {
        let api = try CuDNNConvolution(try CuDNN())
        // Y's dims come from the shape; a tensor of the wrong size handed to the forward node must be refused with
        // cuDNN's words, not crash.
        let s = Self.shape([1, 8, 6, 6], [8, 8, 3, 3], padding: (1, 1, 1, 1))
        let x = try api.tensor(.x, dims: s.dims(.x), strides: s.strides(.x, .nchw))
        let w = try api.tensor(.w, dims: s.dims(.w), strides: s.strides(.w, .nchw))
        let y = try api.tensor(.y, dims: [1, 8, 5, 5], strides: [200, 25, 5, 1])
        let conv = try CuDNNConvolution.Descriptor(api, .convolution)
        try api.set(conv, .convSpatialDims, .int64, [Int64(2)])
        try api.set(conv, .convComputeType, .dataType, [CuDNNConvolution.dataF32])
        try api.set(conv, .convMode, .convolutionMode, [CuDNNConvolution.crossCorrelation])
        try api.set(conv, .convDilations, .int64, [Int64(1), 1])
        try api.set(conv, .convFilterStrides, .int64, [Int64(1), 1])
        try api.set(conv, .convPrePaddings, .int64, [Int64(1), 1])
        try api.set(conv, .convPostPaddings, .int64, [Int64(1), 1])
        try api.finalize(conv, "convolution")
        let forward = try CuDNNConvolution.Descriptor(api, .convolutionForward)
        try api.set(forward, .convForwardX, .descriptor, [x.raw])
        try api.set(forward, .convForwardW, .descriptor, [w.raw])
        try api.set(forward, .convForwardY, .descriptor, [y.raw])
        try api.set(forward, .convForwardDescriptor, .descriptor, [conv.raw])
        try api.set(forward, .convForwardAlpha, .float, [Float(1)])
        try api.set(forward, .convForwardBeta, .float, [Float(0)])
        #expect(throws: TensorError.self) { try api.finalize(forward, "convolution forward") }
    }
}
