import Foundation

/// Shared by the test targets. A small tmpfs to fill up: a real full disk (ENOSPC), not a simulated one. Mounting needs root, so
/// tests using it are enabled only where a mount succeeds (``isAvailable``) and skipped elsewhere.
public struct TinyDisk: Sendable {
    public let path: String
    private var filler: String { path + "/filler" }

    public static let isAvailable: Bool = {
        guard geteuid() == 0, let disk = try? TinyDisk(megabytes: 1) else { return false }
        disk.unmount()
        return true
    }()

    public init(megabytes: Int) throws {
        path = NSTemporaryDirectory() + "clinic-sync-tinydisk-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", path]) else {
            try? FileManager.default.removeItem(atPath: path)
            throw CocoaError(.fileWriteNoPermission)
        }
    }

    /// Writes a filler file until the disk refuses another byte.
    public func fill() {
        let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Deletes the filler: the disk has room again.
    public func free() {
        try? FileManager.default.removeItem(atPath: filler)
    }

    public func unmount() {
        _ = Self.run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    private static func run(_ tool: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
