/// A replicated table. Raw values are the stable ids used on the wire: never reuse one.
public enum TableID: UInt8, CaseIterable, Hashable, Sendable {
    case branch = 1
    case content = 2
    case enquiry = 3
    case enquiryNote = 4
    /// Conflict records: written by the server only, replicated like any other table.
    case conflict = 5

    /// The table's definition in schema v1.
    public var definition: TableDefinition { Schema.v1[self] }
    /// The SQLite table name.
    public var name: String { definition.name }

    /// The table with this SQLite name.
    public init?(name: String) {
        guard let table = TableID.allCases.first(where: { $0.name == name }) else { return nil }
        self = table
    }
}

/// A column of a replicated table. Raw values are stable wire ids (1...125); 0 is the row itself.
public struct ColumnID: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }
    public static func < (lhs: ColumnID, rhs: ColumnID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The largest column id the v1 frame can carry.
    public static let maximum: UInt8 = 125
}

/// The storage class a column accepts.
public enum ColumnType: String, Sendable {
    case text = "TEXT"
    case integer = "INTEGER"
    /// Any storage class: conflict records hold whatever value lost or won.
    case any = "ANY"

    /// Whether a cell of this type can hold `value`'s storage class (null always fits).
    public func accepts(_ value: Value) -> Bool {
        switch (self, value) {
        case (_, .null), (.any, _), (.text, .text), (.integer, .integer): true
        default: false
        }
    }
}

/// One column of a replicated table.
public struct ColumnDefinition: Sendable {
    public let id: ColumnID
    public let name: String
    public let type: ColumnType
    /// When set, the only values a write may carry (besides null).
    public let allowed: [String]?

    init(_ id: UInt8, _ name: String, _ type: ColumnType, allowed: [String]? = nil) {
        self.id = ColumnID(id)
        self.name = name
        self.type = type
        self.allowed = allowed
    }
}

/// A replicated table: its SQLite name, its columns, and which column puts a row in a branch's scope.
public struct TableDefinition: Sendable {
    public let id: TableID
    public let name: String
    public let columns: [ColumnDefinition]
    /// The column naming the row's branch (null or absent: every branch).
    public let branchColumn: ColumnID?

    /// The column with this id, if the table has it.
    public func column(_ id: ColumnID) -> ColumnDefinition? {
        let index = Int(id.rawValue) - 1
        return columns.indices.contains(index) ? columns[index] : nil
    }

    /// The column with this SQLite name.
    public func column(named name: String) -> ColumnDefinition? {
        columns.first { $0.name == name }
    }

    /// Why `value` cannot be written to `column`, or nil when it can. Never echoes the value.
    public func problem(writing value: Value, to column: ColumnID) -> String? {
        guard let definition = self.column(column) else {
            return "\(name) has no column \(column.rawValue)"
        }
        guard definition.type.accepts(value) else {
            return "\(name).\(definition.name) takes \(definition.type.rawValue)"
        }
        if case .real(let real) = value, !real.isFinite {
            return "\(name).\(definition.name) takes finite numbers only"
        }
        if let size = value.byteCount, size > Schema.maxValueBytes {
            return "\(name).\(definition.name) holds at most \(Schema.maxValueBytes) bytes; this value has \(size)"
        }
        if let allowed = definition.allowed, let text = value.text, !allowed.contains(text) {
            return "\(name).\(definition.name) must be one of \(allowed.joined(separator: ", "))"
        }
        return nil
    }
}

/// The replicated schema. Version 1 is frozen: add columns and tables, never renumber them.
public enum Schema {
    /// The largest text or blob one cell may hold (protocol/SPEC.md, "Limits"). Small enough that one
    /// row write always fits in a request under the server's default limits, so no single value can
    /// hold an outbox back (invariant 12); large enough for any page the clinic publishes.
    public static let maxValueBytes = 256 << 10
    /// The longest row id (UTF-8 bytes). Ids are UUIDs and content slugs; a bound keeps a hostile id
    /// from swelling every page and index that carries it.
    public static let maxRowIDBytes = 128

    /// Why a row id cannot be stored, or nil.
    public static func problem(rowID: String) -> String? {
        if rowID.isEmpty { return "a row id may not be empty" }
        let size = rowID.utf8.count
        return size > maxRowIDBytes ? "a row id holds at most \(maxRowIDBytes) bytes; this one has \(size)" : nil
    }

    /// Content kinds the clinic publishes.
    public static let contentKinds = ["page", "treatment", "condition", "testimonial", "practitioner", "notice"]
    /// The life of an enquiry.
    public static let enquiryStatuses = ["new", "contacted", "booked", "closed", "spam"]
    /// How a patient prefers to be contacted.
    public static let contactMethods = ["phone", "email", "either"]

    /// Schema v1, indexed by table id.
    public static let v1 = Tables([
        TableDefinition(
            id: .branch, name: "branch",
            columns: [
                .init(1, "name", .text), .init(2, "address", .text), .init(3, "phone", .text),
            ],
            branchColumn: nil),
        TableDefinition(
            id: .content, name: "content",
            columns: [
                .init(1, "kind", .text, allowed: contentKinds), .init(2, "slug", .text),
                .init(3, "title", .text), .init(4, "summary", .text), .init(5, "body", .text),
                .init(6, "tags", .text), .init(7, "published", .integer), .init(8, "position", .integer),
                .init(9, "branch", .text),
            ],
            branchColumn: ColumnID(9)),
        TableDefinition(
            id: .enquiry, name: "enquiry",
            columns: [
                .init(1, "branch", .text), .init(2, "created_at", .text), .init(3, "name", .text),
                .init(4, "phone", .text), .init(5, "email", .text), .init(6, "topic", .text),
                .init(7, "message", .text), .init(8, "preferred_contact", .text, allowed: contactMethods),
                .init(9, "consent_to_contact", .integer), .init(10, "status", .text, allowed: enquiryStatuses),
                .init(11, "assigned_to", .text), .init(12, "follow_up_on", .text),
            ],
            branchColumn: ColumnID(1)),
        TableDefinition(
            id: .enquiryNote, name: "enquiry_note",
            columns: [
                .init(1, "enquiry", .text), .init(2, "author", .text), .init(3, "body", .text),
                .init(4, "created_at", .text),
            ],
            branchColumn: nil),
        TableDefinition(
            id: .conflict, name: "sync_conflict",
            columns: [
                .init(1, "table_name", .text), .init(2, "row_id", .text), .init(3, "column_name", .text),
                .init(4, "winner_value", .any), .init(5, "winner_replica", .text), .init(6, "winner_hlc", .integer),
                .init(7, "loser_value", .any), .init(8, "loser_replica", .text), .init(9, "loser_hlc", .integer),
                .init(10, "branch", .text), .init(11, "resolved", .integer), .init(12, "detected_at", .text),
            ],
            branchColumn: ColumnID(10)),
    ])

    /// The tables of a schema, looked up by id without hashing.
    public struct Tables: Sendable, Sequence {
        let tables: [TableDefinition]
        init(_ tables: [TableDefinition]) { self.tables = tables }
        public subscript(id: TableID) -> TableDefinition { tables[Int(id.rawValue) - 1] }
        public func makeIterator() -> IndexingIterator<[TableDefinition]> { tables.makeIterator() }
    }
}

/// Column ids of schema v1, named for readable call sites.
public enum Columns {
    public enum Branch {
        public static let name = ColumnID(1), address = ColumnID(2), phone = ColumnID(3)
    }
    public enum Content {
        public static let kind = ColumnID(1), slug = ColumnID(2), title = ColumnID(3), summary = ColumnID(4)
        public static let body = ColumnID(5), tags = ColumnID(6), published = ColumnID(7)
        public static let position = ColumnID(8), branch = ColumnID(9)
    }
    public enum Enquiry {
        public static let branch = ColumnID(1), createdAt = ColumnID(2), name = ColumnID(3), phone = ColumnID(4)
        public static let email = ColumnID(5), topic = ColumnID(6), message = ColumnID(7)
        public static let preferredContact = ColumnID(8), consentToContact = ColumnID(9), status = ColumnID(10)
        public static let assignedTo = ColumnID(11), followUpOn = ColumnID(12)
    }
    public enum Note {
        public static let enquiry = ColumnID(1), author = ColumnID(2), body = ColumnID(3), createdAt = ColumnID(4)
    }
    public enum Conflict {
        public static let tableName = ColumnID(1), rowID = ColumnID(2), columnName = ColumnID(3)
        public static let winnerValue = ColumnID(4), winnerReplica = ColumnID(5), winnerHLC = ColumnID(6)
        public static let loserValue = ColumnID(7), loserReplica = ColumnID(8), loserHLC = ColumnID(9)
        public static let branch = ColumnID(10), resolved = ColumnID(11), detectedAt = ColumnID(12)
    }
}
