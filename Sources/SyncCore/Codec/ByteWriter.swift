/// Appends the primitive encodings of protocol/SPEC.md ("Primitives").
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    /// Unsigned LEB128.
    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// ZigZag, then LEB128: small magnitudes of either sign stay short.
    mutating func signedVarint(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Eight bytes, little-endian.
    mutating func fixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func blob(_ value: [UInt8]) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func value(_ value: Value) {
        switch value {
        case .null:
            byte(0)
        case .integer(let integer):
            byte(1)
            signedVarint(integer)
        case .real(let real):
            byte(2)
            fixed64(real.bitPattern)
        case .text(let text):
            byte(3)
            string(text)
        case .blob(let blob):
            byte(4)
            self.blob(blob)
        }
    }

    /// A row id: 16 raw bytes when it is a canonical lowercase UUID, else its UTF-8.
    mutating func rowID(_ row: String) {
        if let uuid = RowIDCoding.uuidBytes(row) {
            byte(1)
            bytes.append(contentsOf: uuid)
        } else {
            byte(0)
            string(row)
        }
    }
}

enum RowIDCoding {
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// The 16 bytes of `row` if it is exactly `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex.
    static func uuidBytes(_ row: String) -> [UInt8]? {
        var row = row
        return row.withUTF8 { utf8 -> [UInt8]? in
            guard utf8.count == 36 else { return nil }
            var out = [UInt8]()
            out.reserveCapacity(16)
            var high: UInt8? = nil
            for (index, char) in utf8.enumerated() {
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    guard char == UInt8(ascii: "-") else { return nil }
                    continue
                }
                let nibble: UInt8
                switch char {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = char - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = char - UInt8(ascii: "a") + 10
                default: return nil
                }
                if let h = high {
                    out.append(h << 4 | nibble)
                    high = nil
                } else {
                    high = nibble
                }
            }
            return out
        }
    }

    static func string(uuid bytes: some Collection<UInt8>) -> String {
        var utf8 = [UInt8]()
        utf8.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { utf8.append(UInt8(ascii: "-")) }
            utf8.append(hexDigits[Int(byte >> 4)])
            utf8.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: utf8, as: UTF8.self)
    }
}
