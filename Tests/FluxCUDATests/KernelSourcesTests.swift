import Foundation
import Testing

@testable import FluxCUDA

/// KernelSources.swift is generated from Sources/FluxCUDA/Kernels by tools/embed_kernels.py; a kernel edited without
/// rerunning the script would ship stale code in the binary. This fails until the script is rerun.
@Suite struct KernelSourcesTests {
    static let kernelFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/FluxCUDA/Kernels").standardized

    @Test func embeddedSourcesMatchTheKernelFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.kernelFolder.path)
            .filter { $0.hasSuffix(".cu") || $0.hasSuffix(".cuh") }.sorted()
        #expect(!files.isEmpty)
        let embedded = Dictionary(uniqueKeysWithValues: KernelSources.modules.map { ($0.name + ".cu", $0.text) }
            + KernelSources.headers.map { ($0.name, $0.text) })
        #expect(Set(embedded.keys) == Set(files), "run: python3 tools/embed_kernels.py")
        for file in files {
            let text = try String(contentsOf: Self.kernelFolder.appendingPathComponent(file), encoding: .utf8)
            #expect(embedded[file] == text, "\(file) changed since KernelSources.swift was written: run python3 tools/embed_kernels.py")
        }
    }

    @Test func everyKernelFileStartsWithItsMath() throws {
        for module in KernelSources.modules {
            #expect(module.text.hasPrefix("// \(module.name).cu — "), "\(module.name).cu: header comment first")
        }
    }
}

@Suite struct SHA256Tests {
    @Test func knownDigests() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(String(repeating: "a", count: 1000))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

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
