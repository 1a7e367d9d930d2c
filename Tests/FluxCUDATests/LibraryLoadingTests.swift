import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// Missing CUDA libraries give one clear line, never a crash — on this CPU-only machine as on a GPU machine with a
/// broken install.
@Suite struct LibraryLoadingTests {
    /// A search that can find nothing: no variables, one missing folder, no loader path.
    let nowhere = LibrarySearch(environment: [:], directories: ["/nonexistent/cuda"], useLoaderPath: false)

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
        let search = LibrarySearch(environment: ["FLUXSERVE_LIBCUDA": "/etc/hostname", "FLUXSERVE_CUDA_DEBUG": "1"],
                                   directories: [], useLoaderPath: false)
        do {
            _ = try CUDADriver(search: search)
            Issue.record("loaded /etc/hostname as a library")
        } catch {
            #expect("\(error)".contains("tried /etc/hostname"))
        }
    }

    @Test func searchOrderIsVariableThenFolderThenStandardThenLoader() {
        let search = LibrarySearch(environment: ["FLUXSERVE_LIBNVRTC": "/x/libnvrtc.so.13",
                                                 "FLUXSERVE_CUDA_LIB_DIR": "/a:/b"],
                                   directories: ["/"], useLoaderPath: true)
        #expect(search.candidates(["libnvrtc.so.13"], variable: "FLUXSERVE_LIBNVRTC")
                == ["/x/libnvrtc.so.13", "/a/libnvrtc.so.13", "/b/libnvrtc.so.13", "/libnvrtc.so.13",
                    "libnvrtc.so.13"])
    }

    /// Without a GPU, making the backend throws the same one line the CLI prints.
    @Test func backendWithoutDriverThrows() throws {
        guard let reason = CUDABackend.unavailableReason() else {
            print("skipped: a CUDA device is present (this test checks the no-GPU path)")
            return
        }
        #expect(throws: TensorError.self) { _ = try CUDABackend() }
        #expect(!reason.contains("\n"))
    }
}
