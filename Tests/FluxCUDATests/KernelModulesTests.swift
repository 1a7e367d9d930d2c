import Foundation
import Testing

@testable import FluxCUDA

/// The kernels ship inside the binary as SwiftPM resources (Package.swift embeds every `Kernels/*.cu|*.cuh`);
/// `KernelSources` names them for the cache. A kernel file added without an entry there would never be compiled.
@Suite struct KernelModulesTests {
    static let kernelFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/FluxCUDA/Kernels").standardized

    @Test func everyKernelFileIsEmbeddedAsItIsOnDisk() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.kernelFolder.path)
            .filter { $0.hasSuffix(".cu") || $0.hasSuffix(".cuh") }.sorted()
        #expect(!files.isEmpty)
        let embedded = Dictionary(uniqueKeysWithValues: KernelSources.modules.map { ($0.name + ".cu", $0.text) }
            + KernelSources.headers.map { ($0.name, $0.text) })
        #expect(Set(embedded.keys) == Set(files), "every Kernels/ file needs its entry in KernelModules.swift")
        for file in files {
            let text = try String(contentsOf: Self.kernelFolder.appendingPathComponent(file), encoding: .utf8)
            #expect(embedded[file] == text, "\(file): the embedded text differs from the file")
        }
    }

    @Test func everyKernelFileStartsWithItsMath() throws {
        for module in KernelSources.modules {
            #expect(module.text.hasPrefix("// \(module.name).cu — "), "\(module.name).cu: header comment first")
        }
    }
}

@Suite struct KernelCacheTests {
    /// The cache folder is the backend's option alone (the command line derives its default from `HOME`); none
    /// by default, so a library user's backend writes nowhere it was not told to.
    @Test func cacheDirectoryIsAnOption() {
        #expect(CUDABackend.Options().kernelCacheDirectory == nil)
        #expect(CUDABackend.Options(kernelCacheDirectory: "/tmp/fs/kernels").kernelCacheDirectory == "/tmp/fs/kernels")
    }

    @Test func architectures() {
        #expect(KernelCache.architecture((9, 0)) == "sm_90a")
        #expect(KernelCache.architecture((8, 9)) == "sm_89")
        #expect(KernelCache.architecture((10, 0)) == "sm_100")
    }
}
