import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// The cuDNN backend-API plumbing (attribute types, counts, finalize) up to the point that needs a GPU: tensor
/// descriptors and the SDPA operation node. Needs libcudnn.so.9 only (in the standard folders or on the loader path);
/// reported as skipped without it.
@Suite struct CuDNNDescriptorTests {
    @Test(.requires("libcudnn", GPUAvailability.cuDNN)) func sdpaNodeFinalizes() throws {
        let dnn = try CuDNN()
        #expect(dnn.version >= 90_000)
        let (b, h, s, d): (Int64, Int64, Int64, Int64) = (1, 24, 4608, 128)
        let strides = [s * h * d, d, h * d, 1]
        let tensors = try (1...4).map { try dnn.tensor(id: Int64($0), dims: [b, h, s, d], strides: strides) }
        let scale = try dnn.tensor(id: 5, dims: [1, 1, 1, 1], strides: [1, 1, 1, 1], dataType: CuDNN.dataF32,
                                   byValue: true)
        let op = try CuDNN.Owned(dnn, .sdpaForward)
        for (attribute, t) in zip([CuDNN.Attribute.sdpaQ, .sdpaK, .sdpaV, .sdpaO, .sdpaScale], tensors + [scale]) {
            try dnn.set(op, attribute, .descriptor, [t.descriptor])
        }
        try dnn.finalize(op, "SDPA forward")
        // A wrong attribute type is a typed error with cuDNN's words, not a crash.
        #expect(throws: TensorError.self) { try dnn.set(op, .sdpaQ, .int64, [Int64(1)]) }
    }
}
