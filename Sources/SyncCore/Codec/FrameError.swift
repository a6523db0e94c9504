/// A frame could not be decoded. Carries where and why; never any of the frame's values.
public struct FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable codes, also used as problem+json codes at the HTTP edge.
    public enum Code: String, Sendable {
        case truncated = "truncated_frame"
        case trailingBytes = "trailing_bytes"
        case badMagic = "not_a_frame"
        case unsupportedVersion = "unsupported_version"
        case unknownFrameType = "unknown_frame_type"
        case wrongFrameType = "wrong_frame_type"
        case countTooLarge = "count_too_large"
        case malformed = "malformed_frame"
    }

    public let code: Code
    /// Byte offset in the (inflated) frame where decoding stopped.
    public let offset: Int
    public let detail: String

    init(_ code: Code, at offset: Int, _ detail: String) {
        self.code = code
        self.offset = offset
        self.detail = detail
    }

    public var description: String { "\(code.rawValue) at byte \(offset): \(detail)" }
}
