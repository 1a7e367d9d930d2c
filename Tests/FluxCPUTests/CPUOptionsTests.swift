import Foundation
import Testing

@testable import FluxCPU

/// `CPUBackend.Options`: the text the command line gives (`--threads`, `--blas` or their environment aliases) and
/// the process-wide state it drives (`cpuThreadCount`, the BLAS behind `sgemm`).
@Suite struct CPUOptionsTests {
    @Test func threadsParse() throws {
        #expect(try CPUBackend.Options.threads(parsing: "4", option: "--threads") == 4)
        #expect(try CPUBackend.Options.threads(parsing: " 1 ", option: "--threads") == 1)
        for bad in ["0", "-2", "", "four", "2.5", "5000"] {
            do {
                _ = try CPUBackend.Options.threads(parsing: bad, option: "FLUXSERVE_THREADS")
                Issue.record("'\(bad)' accepted as a thread count")
            } catch let error as CPUOptionError {
                #expect(error.option == "FLUXSERVE_THREADS")
                #expect("\(error)" == "FLUXSERVE_THREADS '\(bad)': expected a whole number of threads, 1 to 4096")
            }
        }
    }

    @Test func blasParses() throws {
        #expect(try CPUBackend.Options.blas(parsing: "auto", option: "--blas") == .automatic)
        #expect(try CPUBackend.Options.blas(parsing: "NONE", option: "--blas") == .none)
        #expect(try CPUBackend.Options.blas(parsing: " /opt/lib/libopenblas.so.0 ", option: "--blas")
                == .library("/opt/lib/libopenblas.so.0"))
        #expect(throws: CPUOptionError.self) { try CPUBackend.Options.blas(parsing: " ", option: "--blas") }
        #expect(CPUBackend.Options.BLAS.library("/x.so").description == "/x.so")
        #expect(CPUBackend.Options.BLAS.automatic.description == "auto")
    }

    @Test func defaults() {
        let options = CPUBackend.Options()
        #expect(options.threads == CPUBackend.Options.defaultThreads && options.threads >= 1)
        #expect(options.blas == .automatic)
        #expect(CPUBackend.Options(threads: 0).threads == 1)
    }

    /// `.none` and a missing file open nothing (then `sgemm` runs the Swift kernel); nothing is searched for.
    @Test func blasChoiceDecidesWhatIsOpened() {
        #expect(SystemBLAS.load(.none) == nil)
        #expect(SystemBLAS.load(.library("/nonexistent/libopenblas.so.0")) == nil)
        #expect(SystemBLAS.load(.library("/etc/hostname")) == nil)
    }

    /// The process's BLAS is fixed once a product opened it: configuring the same choice again is fine (and sets
    /// the threads), another choice is refused with a line naming the option.
    @Test func blasIsChosenOncePerProcess() throws {
        _ = SystemBLAS.shared  // opened (or found missing) for the choice in effect
        let current = CPUBackend.configuration
        try CPUBackend.configure(current)
        #expect(cpuThreadCount == current.threads)
        let other: CPUBackend.Options.BLAS = current.blas == .none ? .automatic : .none
        do {
            try CPUBackend.configure(CPUBackend.Options(threads: current.threads, blas: other))
            Issue.record("the BLAS changed after it was opened")
        } catch let error as CPUOptionError {
            #expect(error.option == "blas" && "\(error)".contains("already in use"))
        }
        #expect(CPUBackend.configuration == current)
    }
}
