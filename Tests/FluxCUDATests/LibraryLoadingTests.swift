import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// Missing CUDA libraries give one clear line, never a crash — on this CPU-only machine as on a GPU machine with a
/// broken install.
@Suite struct LibraryLoadingTests {
    /// A search that can find nothing: no overrides, one missing folder, no loader path.
    let nowhere = LibrarySearch(.init(), directories: ["/nonexistent/cuda"], useLoaderPath: false)

    @Test func missingDriverIsOneLine() throws {
        do {
            _ = try CUDADriver(search: nowhere)
            Issue.record("loaded a driver from nowhere")
        } catch let error as TensorError {
            #expect("\(error)" == "libcuda.so.1 not found (no NVIDIA driver)")
        }
    }

    @Test func missingCompilerAndBLASNameTheLibrary() throws {
        #expect(throws: TensorError.self) { _ = try NVRTC(search: nowhere) }
        #expect(throws: TensorError.self) { _ = try CuBLASLt(search: nowhere) }
        do { _ = try NVRTC(search: nowhere) } catch {
            #expect("\(error)".hasPrefix("libnvrtc.so.13 not found"))
        }
    }

    @Test func overrideThatIsNotALibraryFailsCleanly() throws {
        let search = LibrarySearch(.init(driver: "/etc/hostname", verbose: true), directories: [],
                                   useLoaderPath: false)
        do {
            _ = try CUDADriver(search: search)
            Issue.record("loaded /etc/hostname as a library")
        } catch {
            #expect("\(error)".contains("tried /etc/hostname"))
        }
    }

    /// Without `verbose`, the error is the short line only.
    @Test func quietErrorListsNothingTried() throws {
        let search = LibrarySearch(.init(driver: "/etc/hostname"), directories: [], useLoaderPath: false)
        do {
            _ = try CUDADriver(search: search)
            Issue.record("loaded /etc/hostname as a library")
        } catch {
            #expect("\(error)" == "libcuda.so.1 not found (no NVIDIA driver)")
        }
    }

    @Test func searchOrderIsOverrideThenFolderThenStandardThenLoader() {
        let paths = CUDABackend.LibraryPaths(directories: CUDABackend.LibraryPaths.directories(parsing: "/a::/b"),
                                             nvrtc: "/x/libnvrtc.so.13")
        #expect(paths.directories == ["/a", "/b"])
        let search = LibrarySearch(paths, directories: ["/"], useLoaderPath: true)
        #expect(search.candidates(["libnvrtc.so.13"], override: paths.nvrtc)
                == ["/x/libnvrtc.so.13", "/a/libnvrtc.so.13", "/b/libnvrtc.so.13", "/libnvrtc.so.13",
                    "libnvrtc.so.13"])
        // A folder as the override stands for the library's names inside it; another library's override is not used.
        #expect(search.candidates(["libcuda.so.1"], override: "/")
                == ["/libcuda.so.1", "/a/libcuda.so.1", "/b/libcuda.so.1", "/libcuda.so.1", "libcuda.so.1"])
        #expect(search.candidates(["libcudnn.so.9"], override: paths.cudnn).first == "/a/libcudnn.so.9")
    }

    /// Each library takes its own override from the backend's options.
    @Test func eachLibraryReadsItsOwnOverride() throws {
        let paths = CUDABackend.LibraryPaths(driver: "/nonexistent/d.so", nvrtc: "/nonexistent/n.so",
                                             cublasLt: "/nonexistent/b.so", cudnn: "/nonexistent/c.so", verbose: true)
        let search = LibrarySearch(paths, directories: [], useLoaderPath: false)
        let loads: [(load: () throws -> Void, file: String)] = [
            ({ _ = try CUDADriver(search: search) }, "d.so"), ({ _ = try NVRTC(search: search) }, "n.so"),
            ({ _ = try CuBLASLt(search: search) }, "b.so"), ({ _ = try CuDNN(search: search) }, "c.so"),
        ]
        for (load, file) in loads {
            do {
                try load()
                Issue.record("loaded \(file) from nowhere")
            } catch {
                #expect("\(error)".hasSuffix("; tried /nonexistent/\(file)"), "\(error)")
            }
        }
    }

    @Test func switchesParseAndNameTheirOption() throws {
        for on in ["1", "on", "TRUE", " yes "] { #expect(try CUDABackend.Options.onOff(parsing: on, option: "x")) }
        for off in ["0", "off", "false", "no", ""] { #expect(try !CUDABackend.Options.onOff(parsing: off, option: "x")) }
        do {
            _ = try CUDABackend.Options.onOff(parsing: "fast", option: "--fp8-fast-accum")
            Issue.record("'fast' accepted as a switch")
        } catch {
            #expect("\(error)".hasPrefix("--fp8-fast-accum 'fast': expected on or off"), "\(error)")
        }
    }

    /// The options' defaults are the behaviour without any flag: tuned products, fast fp8 accumulation, cuDNN
    /// convolutions, no disk cache, no library overrides.
    @Test func optionDefaults() {
        let options = CUDABackend.Options()
        #expect(options.device == 0 && options.gemmTuning == GemmTuneSettings() && options.fp8FastAccumulation)
        #expect(options.convolution.enabled && options.convolution.summary == "auto")
        #expect(options.kernelCacheDirectory == nil && options.libraries == CUDABackend.LibraryPaths())
        #expect(options.imageDiagnostics.summary == "off")
        #expect(CUDABackend.ImageDiagnosticOptions(checking: true, scalarKernels: true).summary == "check+scalar")
    }

    /// Without a GPU, making the backend throws the same one line the CLI prints.
    @Test(.disabled(if: GPUAvailability.device == nil, "a CUDA device is present (this test checks the no-GPU path)"))
    func backendWithoutDriverThrows() throws {
        let reason = try #require(CUDABackend.unavailableReason())
        #expect(throws: TensorError.self) { _ = try CUDABackend() }
        #expect(!reason.contains("\n"))
    }
}
