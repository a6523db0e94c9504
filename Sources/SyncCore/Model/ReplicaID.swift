/// Identifies one replica (a terminal's local file, or the server itself).
///
/// The server hands these out at enrollment, so it can guarantee they are unique; 64 random bits
/// keep them compact on the wire. Ordering breaks ties between versions with equal clocks.
public struct ReplicaID: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// A fresh random identifier; callers inject the generator so simulations stay deterministic.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> ReplicaID {
        ReplicaID(UInt64.random(in: 1...UInt64.max, using: &generator))
    }
}

extension ReplicaID: CustomStringConvertible, LosslessStringConvertible {
    /// Sixteen lowercase hex digits.
    public var description: String {
        let hex = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public init?(_ description: String) {
        guard description.count == 16, let raw = UInt64(description, radix: 16) else { return nil }
        self.rawValue = raw
    }
}

extension ReplicaID {
    /// The bit pattern as a signed integer, which is how SQLite stores it.
    public var databaseValue: Int64 { Int64(bitPattern: rawValue) }
    public init(databaseValue: Int64) { self.rawValue = UInt64(bitPattern: databaseValue) }
}

/// Encoded as its sixteen hex digits.
extension ReplicaID: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = ReplicaID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a replica id"))
        }
        self = id
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
