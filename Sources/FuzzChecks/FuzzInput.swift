import SyncCore

/// Draws structured choices from a fuzzer's bytes, deterministically: the same bytes give the same
/// choices. Once the bytes run out every draw is zero, so any input yields a complete structure.
package struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    package var isExhausted: Bool { offset >= bytes.count }

    package mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    package mutating func bool() -> Bool { byte() & 1 == 1 }

    /// A number in `0..<bound` (bound ≥ 1).
    package mutating func int(below bound: Int) -> Int {
        guard bound > 1 else { return 0 }
        let raw = bound <= 256 ? UInt64(byte()) : UInt64(byte()) | UInt64(byte()) << 8 | UInt64(byte()) << 16
        return Int(raw % UInt64(bound))
    }

    package mutating func uint64() -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(byte()) << (8 * UInt64(index)) }
        return value
    }

    package mutating func pick<T>(_ choices: [T]) -> T { choices[int(below: choices.count)] }

    /// The rest of the bytes, or the next `count` of them.
    package mutating func take(_ count: Int? = nil) -> [UInt8] {
        let end = count.map { min(bytes.count, offset + $0) } ?? bytes.count
        guard offset < end else { return [] }
        defer { offset = end }
        return Array(bytes[offset..<end])
    }

    /// Boundaries where conversions between UInt64, Int64, the 48-bit clock and UInt32 go wrong.
    package static let boundaries: [UInt64] = [
        0, 1, 2, 0x7F, 0x80, 0xFFFF, 0x1_0000, UInt64(UInt32.max) - 1, UInt64(UInt32.max), UInt64(UInt32.max) + 1,
        HLC.maxMilliseconds, HLC.maxMilliseconds + 1, 1 << 53, UInt64(Int64.max) - 1, UInt64(Int64.max),
        UInt64(Int64.max) + 1, UInt64.max - 1, UInt64.max,
    ]

    /// Mostly small numbers, often a boundary, sometimes anything.
    package mutating func interestingUInt64(small: UInt64 = 64) -> UInt64 {
        switch byte() % 8 {
        case 0, 1, 2: UInt64(byte()) % small
        case 3, 4: pick(Self.boundaries)
        case 5: pick(Self.boundaries) &+ UInt64(byte() % 5) &- 2
        case 6: uint64()
        default: UInt64(byte()) << (UInt64(byte()) % 64)
        }
    }

    /// A value of any storage class, with boundaries: Int64 extremes, NaN, infinities, -0.0,
    /// empty, huge and ill-assorted text, blobs.
    package mutating func value() -> Value {
        switch byte() % 12 {
        case 0: return .null
        case 1: return .integer(Int64(bitPattern: interestingUInt64()))
        case 2: return .integer(pick([Int64.max, Int64.min, -1, 0, 1, Int64.min + 1]))
        case 3: return .real(pick([Double.nan, -Double.nan, .infinity, -.infinity, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 1.5]))
        case 4: return .real(Double(bitPattern: uint64()))
        case 5: return .blob(take(int(below: 64)))
        case 6: return .text(pick(Schema.enquiryStatuses + Schema.contentKinds + Schema.contactMethods))
        default: return .text(text())
        }
    }

    /// Text: empty, from the input's bytes (repaired to UTF-8), ids and enum values of the schema,
    /// combining sequences, NUL and BOM, or one just over and under the 256 KiB value limit.
    package mutating func text() -> String {
        switch byte() % 10 {
        case 0: return ""
        case 1: return pick(["harley-street", "richmond", "nowhere", Self.enquiry, Self.note, Self.enquiry.uppercased()])
        case 2: return pick(["\u{0}", "\u{FEFF}x", "e\u{301}", "\u{E9}", "\u{10FFFF}", "🦴", String(repeating: "\u{301}", count: 40)])
        case 3 where byte() % 4 == 0:
            // Rare: around the 256 KiB value limit. Megabytes through a debug, ASan build are slow.
            let size = pick([Schema.maxValueBytes - 1, Schema.maxValueBytes, Schema.maxValueBytes + 1, 1 << 20])
            return String(repeating: pick(["-", "é"]), count: size / 2 + int(below: size / 2 + 1))
        case 4: return pick(["0", "-1", "9223372036854775807", "9223372036854775808", "1e400", "NaN", "2026-11-29T09:15:00Z"])
        default: return String(decoding: take(int(below: 40)), as: UTF8.self)
        }
    }

    /// A row id from a small pool, so that changes meet stored rows; sometimes a new or odd one.
    package mutating func rowID() -> String {
        switch byte() % 12 {
        case 0: return ""
        case 1: return Self.enquiry.uppercased()
        case 2: return String(decoding: take(int(below: 40)), as: UTF8.self)
        case 3: return String(repeating: "r", count: byte() % 8 == 0 ? Schema.maxValueBytes + 1 : pick([255, 256, 4096]))
        default: return pick(Self.rows)
        }
    }

    /// Rows the fuzzed store and replica hold at the start of every run.
    package static let enquiry = "6f1c2b3a-9d8e-4f70-a1b2-c3d4e5f60718"
    package static let otherEnquiry = "0a0b0c0d-0000-4000-8000-000000000002"
    package static let note = "7a7b7c7d-0000-4000-8000-000000000003"
    package static let conflict = "5c5c5c5c-0000-4000-8000-000000000004"
    package static let rows = ["harley-street", "richmond", "manual-therapy", enquiry, otherEnquiry, note, conflict, "x"]

    /// A table, most often a real one's id.
    package mutating func table() -> TableID { pick(TableID.allCases) }

    /// A column id: mostly one the table has, sometimes 1...125 beyond it.
    package mutating func column(of table: TableID) -> ColumnID {
        let count = table.definition.columns.count
        return byte() % 8 == 0 ? ColumnID(UInt8(1 + int(below: Int(ColumnID.maximum)))) : ColumnID(UInt8(1 + int(below: count)))
    }

    /// A value that suits the column most of the time, so that writes get past validation.
    package mutating func value(for column: ColumnDefinition?) -> Value {
        guard let column, bool() else { return value() }
        if let allowed = column.allowed, bool() { return .text(pick(allowed)) }
        switch column.type {
        case .integer: return .integer(Int64(bitPattern: interestingUInt64()))
        case .text: return column.name == "branch" ? .text(pick(["harley-street", "richmond", "", "nowhere"])) : .text(text())
        case .any: return value()
        }
    }

    /// A clock reading near `base`, or a boundary.
    package mutating func clock(near base: HLC) -> HLC {
        switch byte() % 8 {
        case 0: return HLC(rawValue: pick(Self.boundaries))
        case 1: return HLC(rawValue: uint64())
        case 2: return HLC(rawValue: base.rawValue &+ (UInt64(byte()) << 16) &* 60_000) // up to hours ahead
        default:
            let delta = Int64(Int8(bitPattern: byte())) << Int64(byte() % 24)
            return HLC(rawValue: UInt64(bitPattern: Int64(bitPattern: base.rawValue) &+ delta))
        }
    }

    /// One change: a write, delete or erase of a row from the pool.
    package mutating func change(at version: Version, sameRowAs previous: Change?) -> Change {
        let table: TableID, row: String
        if let previous, byte() % 3 == 0 {
            (table, row) = (previous.table, previous.row)
        } else {
            (table, row) = (self.table(), rowID())
        }
        let operation: Change.Operation
        switch byte() % 10 {
        case 0: operation = .delete
        case 1: operation = .erase
        default:
            let column = column(of: table)
            operation = .write(column: column, value: value(for: table.definition.column(column)), baseSeq: interestingUInt64())
        }
        return Change(table: table, row: row, operation: operation, version: version)
    }
}
