import CZlib

/// Limits enforced while inflating untrusted input.
public struct InflateLimits: Hashable, Sendable {
    /// Most compressed bytes accepted.
    public var maxCompressedBytes: Int
    /// Most bytes the input may inflate to.
    public var maxInflatedBytes: Int
    /// Most inflated bytes per compressed byte, checked once the output passes `ratioFloorBytes`.
    public var maxRatio: Int
    /// Output below this size is never refused for its ratio: small frames compress oddly well, and a
    /// single cell at ``Schema/maxValueBytes`` of one repeated character must always get through.
    public var ratioFloorBytes: Int

    public init(maxCompressedBytes: Int = 2 << 20, maxInflatedBytes: Int = 16 << 20, maxRatio: Int = 100, ratioFloorBytes: Int = 1 << 20) {
        self.maxCompressedBytes = maxCompressedBytes
        self.maxInflatedBytes = maxInflatedBytes
        self.maxRatio = maxRatio
        self.ratioFloorBytes = ratioFloorBytes
    }
}

/// Deflating or inflating failed. Carries sizes, never content.
public struct CompressionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable codes, also used as problem+json codes at the HTTP edge.
    public enum Code: String, Sendable {
        case compressedTooLarge = "body_too_large"
        case inflatedTooLarge = "inflated_too_large"
        case ratioExceeded = "compression_ratio_exceeded"
        case corrupt = "bad_compression"
    }

    public let code: Code
    public let detail: String

    public var description: String { "\(code.rawValue): \(detail)" }
}

/// zlib-wrapped deflate (RFC 1950), which is what HTTP's `Content-Encoding: deflate` means.
public enum Deflate {
    /// Compresses `input` at `level` (zlib's 0–9; 6 is its default).
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        guard czlib_deflate_init(&stream, level) == Z_OK else { fatalError("deflateInit failed: out of memory") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))))
        let produced = input.withUnsafeBufferPointer { source -> Int in
            output.withUnsafeMutableBufferPointer { destination -> Int in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.avail_in = uInt(source.count)
                stream.next_out = destination.baseAddress
                stream.avail_out = uInt(destination.count)
                let status = deflate(&stream, Z_FINISH)
                precondition(status == Z_STREAM_END, "deflate with a deflateBound buffer must finish")
                return Int(stream.total_out)
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// Inflates `input`, enforcing `limits` while inflating, so a bomb is stopped after at most
    /// one chunk past the limit rather than after it has filled memory.
    public static func decompress(_ input: [UInt8], limits: InflateLimits = InflateLimits()) throws(CompressionError) -> [UInt8] {
        guard input.count <= limits.maxCompressedBytes else {
            throw CompressionError(code: .compressedTooLarge, detail: "\(input.count) compressed bytes; the limit is \(limits.maxCompressedBytes)")
        }
        var stream = z_stream()
        guard czlib_inflate_init(&stream) == Z_OK else { fatalError("inflateInit failed: out of memory") }
        defer { inflateEnd(&stream) }
        let chunk = 64 << 10
        var output: [UInt8] = []
        output.reserveCapacity(min(limits.maxInflatedBytes, max(input.count * 4, 256)))
        var buffer = [UInt8](repeating: 0, count: chunk)
        let result: Result<Void, CompressionError> = input.withUnsafeBufferPointer { source in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = uInt(source.count)
            while true {
                let (status, produced) = buffer.withUnsafeMutableBufferPointer { destination -> (Int32, Int) in
                    stream.next_out = destination.baseAddress
                    stream.avail_out = uInt(chunk)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, chunk - Int(stream.avail_out))
                }
                output.append(contentsOf: buffer[0..<produced])
                if output.count > limits.maxInflatedBytes {
                    return .failure(CompressionError(code: .inflatedTooLarge, detail: "inflates past \(limits.maxInflatedBytes) bytes"))
                }
                let consumed = max(Int(stream.total_in), 1)
                if output.count > limits.ratioFloorBytes && output.count / consumed > limits.maxRatio {
                    return .failure(CompressionError(code: .ratioExceeded, detail: "inflates more than \(limits.maxRatio):1"))
                }
                switch status {
                case Z_STREAM_END:
                    guard stream.avail_in == 0 else {
                        return .failure(CompressionError(code: .corrupt, detail: "\(stream.avail_in) bytes after the end of the zlib stream"))
                    }
                    return .success(())
                case Z_OK:
                    continue
                case Z_BUF_ERROR where stream.avail_in == 0:
                    return .failure(CompressionError(code: .corrupt, detail: "zlib stream is truncated"))
                default:
                    return .failure(CompressionError(code: .corrupt, detail: "not a valid zlib stream"))
                }
            }
        }
        try result.get()
        return output
    }

    /// Whether `bytes` start with a zlib header (RFC 1950: CM 8, a check value that divides by 31).
    public static func looksCompressed(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        return bytes[0] & 0x0F == 8 && (UInt16(bytes[0]) << 8 | UInt16(bytes[1])) % 31 == 0
    }
}
