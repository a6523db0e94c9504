import Foundation
import GRDB
import SyncCore

/// Enquiries and their notes on a replica: `replica.enquiries.add(_:)`.
public struct Enquiries: Sendable {
    let replica: Replica

    /// Records a new enquiry for this terminal's branch and returns its id.
    @discardableResult
    public func add(_ enquiry: NewEnquiry, id: String = UUID().uuidString.lowercased()) throws -> String {
        try add(contentsOf: [enquiry], ids: [id])[0]
    }

    /// Records several enquiries in one transaction (an import, a form queue) and returns their ids.
    @discardableResult
    public func add(contentsOf enquiries: [NewEnquiry], ids: [String]? = nil) throws -> [String] {
        guard let identity = try replica.identity() else { throw ReplicaError.notEnrolled }
        let ids = ids ?? enquiries.map { _ in UUID().uuidString.lowercased() }
        precondition(ids.count == enquiries.count, "one id per enquiry")
        let createdAt = Timestamp.iso8601(milliseconds: replica.wall.milliseconds())
        try replica.commit(zip(ids, enquiries).map { id, enquiry in .write(.enquiry, id, [
            (Columns.Enquiry.branch, .text(identity.branch)),
            (Columns.Enquiry.createdAt, .text(createdAt)),
            (Columns.Enquiry.name, .text(enquiry.name)),
            (Columns.Enquiry.phone, enquiry.phone.value),
            (Columns.Enquiry.email, enquiry.email.value),
            (Columns.Enquiry.topic, enquiry.topic.value),
            (Columns.Enquiry.message, enquiry.message.value),
            (Columns.Enquiry.preferredContact, enquiry.preferredContact.value),
            (Columns.Enquiry.consentToContact, .integer(enquiry.consentToContact ? 1 : 0)),
            (Columns.Enquiry.status, .text("new")),
        ]) })
        return ids
    }

    /// Changes fields of an enquiry; only the named columns are written.
    public func update(_ id: String, status: String? = nil, assignedTo: String? = nil, followUpOn: String? = nil) throws {
        var cells: [(ColumnID, Value)] = []
        if let status { cells.append((Columns.Enquiry.status, .text(status))) }
        if let assignedTo { cells.append((Columns.Enquiry.assignedTo, .text(assignedTo))) }
        if let followUpOn { cells.append((Columns.Enquiry.followUpOn, .text(followUpOn))) }
        try update(id, cells)
    }

    /// Writes the given columns of an enquiry.
    public func update(_ id: String, _ cells: [(ColumnID, Value)]) throws {
        guard try get(id) != nil else { throw ReplicaError(.notFound, "no enquiry \(id) on this terminal") }
        guard !cells.isEmpty else { return }
        try replica.commit([.write(.enquiry, id, cells)])
    }

    /// Adds a note to an enquiry and returns the note's id.
    @discardableResult
    public func addNote(to enquiry: String, body: String, author: String? = nil, id: String = UUID().uuidString.lowercased()) throws -> String {
        guard try get(enquiry) != nil else { throw ReplicaError(.notFound, "no enquiry \(enquiry) on this terminal") }
        let createdAt = Timestamp.iso8601(milliseconds: replica.wall.milliseconds())
        try replica.commit([.write(.enquiryNote, id, [
            (Columns.Note.enquiry, .text(enquiry)), (Columns.Note.author, author.value),
            (Columns.Note.body, .text(body)), (Columns.Note.createdAt, .text(createdAt)),
        ])])
        return id
    }

    /// Erases an enquiry, its notes and any conflict about them, here and (after sync) everywhere.
    public func erase(_ id: String) throws {
        try replica.commit([.delete(.enquiry, id, erase: true)])
    }

    /// The enquiry with this id, if this terminal holds it.
    public func get(_ id: String) throws -> Enquiry? {
        try replica.writer.read { db in try Row.fetchOne(db, sql: "SELECT * FROM enquiry WHERE id = ?", arguments: [id]).map(Self.enquiry) }
    }

    /// Enquiries, newest first, optionally of one status.
    public func list(status: String? = nil) throws -> [Enquiry] {
        try replica.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM enquiry \(status == nil ? "" : "WHERE status = ?") ORDER BY created_at DESC, id",
                             arguments: status.map { [$0] } ?? []).map(Self.enquiry)
        }
    }

    /// The notes of an enquiry, oldest first.
    public func notes(of enquiry: String) throws -> [EnquiryNote] {
        try replica.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM enquiry_note WHERE enquiry = ? ORDER BY created_at, id", arguments: [enquiry]).map { row in
                EnquiryNote(id: row["id"], enquiry: row["enquiry"], author: row["author"], body: row["body"] ?? "", createdAt: row["created_at"] ?? "")
            }
        }
    }

    static func enquiry(_ row: Row) -> Enquiry {
        Enquiry(
            id: row["id"], branch: row["branch"] ?? "", createdAt: row["created_at"] ?? "", name: row["name"] ?? "",
            phone: row["phone"], email: row["email"], topic: row["topic"], message: row["message"],
            preferredContact: row["preferred_contact"], consentToContact: (row["consent_to_contact"] as Int64?) == 1,
            status: row["status"] ?? "new", assignedTo: row["assigned_to"], followUpOn: row["follow_up_on"])
    }
}

/// Published content on a replica: `replica.content.list()`.
public struct ContentLibrary: Sendable {
    let replica: Replica

    /// Content items, by kind then position.
    public func list(kind: String? = nil) throws -> [ContentItem] {
        try replica.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM content \(kind == nil ? "" : "WHERE kind = ?") ORDER BY kind, position, slug",
                             arguments: kind.map { [$0] } ?? []).map(Self.item)
        }
    }

    /// The item with this slug.
    public func item(slug: String) throws -> ContentItem? {
        try replica.writer.read { db in try Row.fetchOne(db, sql: "SELECT * FROM content WHERE slug = ?", arguments: [slug]).map(Self.item) }
    }

    static func item(_ row: Row) -> ContentItem {
        ContentItem(
            id: row["id"], kind: row["kind"] ?? "page", slug: row["slug"] ?? row["id"], title: row["title"] ?? "",
            summary: row["summary"], body: row["body"], tags: row["tags"], published: (row["published"] as Int64?) != 0,
            position: row["position"], branch: row["branch"])
    }
}

/// Conflicts on a replica: listed, and resolved by an ordinary new write.
public struct Conflicts: Sendable {
    let replica: Replica

    /// What to keep when resolving a conflict.
    public enum Resolution: Hashable, Sendable {
        /// The value this terminal wrote.
        case mine
        /// The other author's value.
        case theirs
        /// A new value.
        case value(Value)
    }

    public func list(includeResolved: Bool = false) throws -> [Conflict] {
        try replica.writer.read { db in try Self.fetch(db, replica: replica, includeResolved: includeResolved) }
    }

    /// Resolves a conflict by writing the chosen value to the cell; after sync it is resolved everywhere.
    public func resolve(_ id: String, keep resolution: Resolution) throws {
        guard let conflict = try list(includeResolved: true).first(where: { $0.id == id || $0.id.hasPrefix(id) }) else {
            throw ReplicaError(.notFound, "no conflict \(id) on this terminal")
        }
        guard let table = TableID(name: conflict.table), let column = table.definition.column(named: conflict.column) else {
            throw ReplicaError(.notFound, "conflict \(id) names an unknown cell")
        }
        let value: Value
        switch resolution {
        case .value(let chosen):
            value = chosen
        case .mine, .theirs:
            guard let me = try replica.identity()?.replica.description else { throw ReplicaError.notEnrolled }
            let mineIsWinner: Bool
            if conflict.winnerReplica == me { mineIsWinner = true }
            else if conflict.loserReplica == me { mineIsWinner = false }
            else { throw ReplicaError(.ambiguousResolution, "this terminal wrote neither side of conflict \(id); pass the value to keep") }
            let keepWinner = (resolution == .mine) == mineIsWinner
            let raw = try replica.writer.read { db in
                try Row.fetchOne(db, sql: "SELECT winner_value, loser_value FROM sync_conflict WHERE id = ?", arguments: [conflict.id])
                    .map { (Value.fromDatabaseValue($0["winner_value"]) ?? .null, Value.fromDatabaseValue($0["loser_value"]) ?? .null) }
            }
            guard let raw else { throw ReplicaError(.notFound, "no conflict \(id)") }
            value = keepWinner ? raw.0 : raw.1
        }
        if conflict.rowDeleted { throw ReplicaError(.rowDeleted, "\(conflict.table) \(conflict.row) was deleted; the delete stands") }
        try replica.commit([.write(table, conflict.row, [(column.id, value)])])
    }

    static func fetch(_ db: Database, replica: Replica, includeResolved: Bool) throws -> [Conflict] {
        try rows(db).filter { includeResolved || !$0.resolved }
    }

    /// Conflicts with "resolved" derived: closed by the server, or the cell has moved past the winner here.
    private static func rows(_ db: Database) throws -> [Conflict] {
        // A conflict row's cells can arrive over two pull pages: skip one that is not whole yet, never crash on it.
        try Row.fetchAll(db, sql: "SELECT * FROM sync_conflict ORDER BY detected_at, id").compactMap { row -> Conflict? in
            guard let rowID = row["row_id"] as String? else { return nil }
            let tableName: String = row["table_name"] ?? ""
            let columnName: String = row["column_name"] ?? ""
            let table = TableID(name: tableName)
            let column = table?.definition.column(named: columnName)
            var current: Version? = nil
            var deleted = false
            if let table {
                deleted = try Bool.fetchOne(db, sql: "SELECT 1 FROM sync_cell WHERE tbl = ? AND row = ? AND col = 0",
                                            arguments: [Int64(table.rawValue), rowID]) ?? false
                if let column {
                    current = try Row.fetchOne(db, sql: "SELECT hlc, replica FROM sync_cell WHERE tbl = ? AND row = ? AND col = ?",
                                               arguments: [Int64(table.rawValue), rowID, Int64(column.id.rawValue)])
                        .map { Version(hlc: HLC(databaseValue: $0[0]), replica: ReplicaID(databaseValue: $0[1])) }
                }
            }
            let winner = Version(hlc: HLC(databaseValue: row["winner_hlc"] ?? 0), replica: ReplicaID(row["winner_replica"] ?? "") ?? ReplicaID(0))
            let superseded = current.map { $0 > winner } ?? false
            let winnerValue = (Value.fromDatabaseValue(row["winner_value"]) ?? .null).displayText
            let loserValue = (Value.fromDatabaseValue(row["loser_value"]) ?? .null).displayText
            var (kept, alsoWritten) = (winnerValue, loserValue)
            if superseded || (row["resolved"] as Int64?) == 1, let table, let column {
                // Resolved: what the cell holds now is what was kept, whichever side it came from.
                let now = try DatabaseValue.fetchOne(db, sql: "SELECT \(column.name) FROM \(table.name) WHERE id = ?", arguments: [rowID])
                    .flatMap(Value.fromDatabaseValue)?.displayText
                kept = now
                alsoWritten = now == winnerValue ? loserValue : winnerValue
            }
            return Conflict(
                id: row["id"], table: tableName, row: rowID, column: columnName,
                winnerValue: (Value.fromDatabaseValue(row["winner_value"]) ?? .null).displayText,
                winnerReplica: row["winner_replica"] ?? "",
                loserValue: (Value.fromDatabaseValue(row["loser_value"]) ?? .null).displayText,
                loserReplica: row["loser_replica"] ?? "",
                resolved: (row["resolved"] as Int64?) == 1 || superseded,
                keptValue: kept, alsoWrittenValue: alsoWritten,
                rowDeleted: deleted && (Value.fromDatabaseValue(row["winner_value"]) ?? .null) == .null,
                detectedAt: row["detected_at"] ?? "")
        }
    }
}

extension Value {
    var displayText: String? {
        self == .null ? nil : description
    }
}
