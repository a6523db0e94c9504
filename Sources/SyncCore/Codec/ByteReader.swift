/// Reads the primitive encodings, failing with a ``FrameError`` on anything short or malformed.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - offset }

    func error(_ code: FrameError.Code, _ detail: String) -> FrameError {
        FrameError(code, at: offset, detail)
    }

    mutating func byte(_ what: @autoclosure () -> String) throws(FrameError) -> UInt8 {
        guard offset < bytes.count else { throw error(.truncated, "expected \(what())") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func varint(_ what: @autoclosure () -> String) throws(FrameError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.byte(what())
            if shift == 63 && byte > 1 { throw error(.malformed, "\(what()) overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A varint that the protocol bounds to 2^63 − 1 (seqs, cursors, counters): both sides store it
    /// as a signed 64-bit integer, so anything larger is malformed here, where it is decoded (invariant 11).
    mutating func sequenceNumber(_ what: @autoclosure () -> String) throws(FrameError) -> UInt64 {
        let start = offset
        let value = try varint(what())
        guard value <= Self.maxSequenceNumber else {
            throw FrameError(.malformed, at: start, "\(what()) is above 2^63 - 1")
        }
        return value
    }

    static let maxSequenceNumber = UInt64(Int64.max)

    /// A clock reading: its top bit must be clear, since SQLite orders it as a signed integer.
    mutating func clock(_ what: @autoclosure () -> String) throws(FrameError) -> HLC {
        let start = offset
        let raw = try fixed64(what())
        guard raw <= Self.maxSequenceNumber else { throw FrameError(.malformed, at: start, "\(what()) is above 2^63 - 1") }
        return HLC(rawValue: raw)
    }

    mutating func signedVarint(_ what: @autoclosure () -> String) throws(FrameError) -> Int64 {
        let raw = try varint(what())
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    mutating func fixed64(_ what: @autoclosure () -> String) throws(FrameError) -> UInt64 {
        guard remaining >= 8 else { throw error(.truncated, "expected 8 bytes of \(what())") }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        offset += 8
        return value
    }

    /// A count of items that each take at least `minimumSize` bytes: a count that cannot fit is a lie.
    mutating func count(_ what: @autoclosure () -> String, minimumSize: Int = 1) throws(FrameError) -> Int {
        let start = offset
        let count = try varint(what())
        guard count <= UInt64(remaining / max(minimumSize, 1)) else {
            throw FrameError(.countTooLarge, at: start, "\(what()) says \(count) but only \(remaining) bytes remain")
        }
        return Int(count)
    }

    /// A byte length: one longer than what remains means the frame was cut short.
    mutating func length(_ what: @autoclosure () -> String) throws(FrameError) -> Int {
        let length = try varint(what())
        guard length <= UInt64(remaining) else {
            throw error(.truncated, "\(what()) says \(length) bytes, \(remaining) remain")
        }
        return Int(length)
    }

    mutating func raw(_ length: Int, _ what: @autoclosure () -> String) throws(FrameError) -> ArraySlice<UInt8> {
        guard length <= remaining else {
            throw error(.truncated, "\(what()) needs \(length) bytes, \(remaining) remain")
        }
        defer { offset += length }
        return bytes[offset..<offset + length]
    }

    mutating func string(_ what: @autoclosure () -> String) throws(FrameError) -> String {
        let start = offset
        let slice = try raw(try length(what()), what())
        guard let string = String(validating: slice, as: UTF8.self) else {
            throw FrameError(.malformed, at: start, "\(what()) is not valid UTF-8")
        }
        return string
    }

    mutating func value() throws(FrameError) -> Value {
        let start = offset
        switch try byte("value tag") {
        case 0: return .null
        case 1: return .integer(try signedVarint("integer value"))
        case 2:
            // SQLite stores NaN as NULL and JSON has no infinities: a non-finite real could not round-trip.
            let real = Double(bitPattern: try fixed64("real value"))
            guard real.isFinite else { throw FrameError(.malformed, at: start, "real value is not finite") }
            return .real(real)
        case 3: return .text(try string("text value"))
        case 4:
            return .blob(Array(try raw(try length("blob length"), "blob value")))
        case let tag: throw FrameError(.malformed, at: start, "unknown value tag \(tag)")
        }
    }

    mutating func rowID() throws(FrameError) -> String {
        let start = offset
        switch try byte("row id tag") {
        case 0:
            let row = try string("row id")
            // A text id that looks like a UUID would re-encode as one: refuse it so encoding stays canonical.
            guard RowIDCoding.uuidBytes(row) == nil else {
                throw FrameError(.malformed, at: start, "UUID row id sent as text")
            }
            return row
        case 1: return RowIDCoding.string(uuid: try raw(16, "UUID row id"))
        case let tag: throw FrameError(.malformed, at: start, "unknown row id tag \(tag)")
        }
    }

    mutating func table() throws(FrameError) -> TableID {
        let start = offset
        let raw = try byte("table id")
        guard let table = TableID(rawValue: raw) else {
            throw FrameError(.malformed, at: start, "unknown table id \(raw)")
        }
        return table
    }
}
