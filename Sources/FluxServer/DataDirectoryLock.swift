import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock` on `<data dir>/lock` for the life of the server: two processes on one store would run jobs
/// twice. The kernel drops the lock when the process dies, `kill -9` included.
public final class DataDirectoryLock: Sendable {
    private let descriptor: Int32

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = URL(fileURLWithPath: directory).appendingPathComponent("lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError.dataDirectoryInUse(directory + " (cannot open lock file)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StoreError.dataDirectoryInUse(directory)
        }
        descriptor = fd
    }

    deinit { close(descriptor) }
}
