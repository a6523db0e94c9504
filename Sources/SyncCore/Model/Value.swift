/// A cell value, as SQLite stores it.
public enum Value: Hashable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

extension Value: CustomStringConvertible {
    /// A short rendering for tools; callers must not log it (it may hold patient data).
    public var description: String {
        switch self {
        case .null: "null"
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .text(let value): value
        case .blob(let bytes): "<\(bytes.count) bytes>"
        }
    }

    /// The text, if this is a text value.
    public var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    /// Bytes of a text (UTF-8) or blob value; nil for the fixed-size kinds.
    public var byteCount: Int? {
        switch self {
        case .text(let value): value.utf8.count
        case .blob(let bytes): bytes.count
        case .null, .integer, .real: nil
        }
    }

    /// The integer, if this is an integer value.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }
}

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(nilLiteral: ()) { self = .null }
}

extension Optional where Wrapped == String {
    /// `.text` or `.null`.
    public var value: Value { map(Value.text) ?? .null }
}
