import CZlib
import Foundation

/// Streams a file through gzip (RFC 1952) in fixed-size chunks, so a backup of any size needs little
/// memory, and a compressed backup is an ordinary `.gz` the system's `gzip -d` also opens.
enum GzipFile {
    static let chunk = 1 << 20

    /// Whether the file starts with gzip's magic bytes.
    static func isGzip(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 2)) == Data([0x1F, 0x8B])
    }

    static func compress(_ source: String, to destination: String) throws {
        try transform(source, to: destination, compressing: true)
    }

    static func decompress(_ source: String, to destination: String) throws {
        try transform(source, to: destination, compressing: false)
    }

    private static func transform(_ source: String, to destination: String, compressing: Bool) throws {
        guard let input = FileHandle(forReadingAtPath: source) else { throw BackupError("cannot read \(source)") }
        defer { try? input.close() }
        let output = try PrivateFile.create(destination)
        defer { try? output.close() }
        var stream = z_stream()
        let initialised = compressing ? czlib_deflate_init2(&stream, 6, 31) : czlib_inflate_init2(&stream, 31)
        guard initialised == Z_OK else { throw BackupError("zlib could not start (out of memory)") }
        defer { if compressing { deflateEnd(&stream) } else { inflateEnd(&stream) } }
        var buffer = [UInt8](repeating: 0, count: chunk)
        var finished = false
        while !finished {
            let block = [UInt8](try input.read(upToCount: chunk) ?? Data())
            let last = block.count < chunk
            try block.withUnsafeBufferPointer { source in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.avail_in = uInt(source.count)
                repeat {
                    let (status, produced) = buffer.withUnsafeMutableBufferPointer { target -> (Int32, Int) in
                        stream.next_out = target.baseAddress
                        stream.avail_out = uInt(target.count)
                        let status = compressing ? deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH) : inflate(&stream, Z_NO_FLUSH)
                        return (status, target.count - Int(stream.avail_out))
                    }
                    if produced > 0 { try output.write(contentsOf: buffer[0..<produced]) }
                    switch status {
                    case Z_STREAM_END: finished = true
                    case Z_OK: break
                    case Z_BUF_ERROR where stream.avail_in == 0 && !last: break
                    default: throw BackupError("not a valid gzip file, or truncated")
                    }
                } while stream.avail_out == 0 || (stream.avail_in > 0 && !finished)
            }
            if last && !finished { throw BackupError("the gzip file is truncated") }
        }
        try output.synchronize()
    }
}

/// A backup or restore that could not be done; nothing already stored was changed.
public struct BackupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Files holding patient data: created owner-only, never over an existing file.
enum PrivateFile {
    static func create(_ path: String) throws -> FileHandle {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupError("cannot create \(path): \(String(cString: strerror(errno)))") }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Makes a rename into `directory` durable.
    static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
