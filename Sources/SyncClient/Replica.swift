import Foundation
import GRDB
import SyncCore
import SyncStorage

/// A terminal's local SQLite copy: the clinic's content and its branch's enquiries, readable and
/// writable offline. Several processes (an app, the CLI, the daemon) may open one file at once.
///
/// Every local write is one transaction: the app row, its cell versions and the outbox entries
/// commit together (invariant 6).
public struct Replica: Sendable {
    /// The file this replica lives in.
    public let path: String
    let writer: DatabasePool
    let wall: any WallClock
    let applier = ChangeApplier(keepsValues: false, reSequencesDuplicates: true)

    /// Opens the replica at `path`, creating it (mode 0600) and migrating it as needed.
    public static func open(at path: String, clock: any WallClock = SystemWallClock()) throws -> Replica {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        if !FileManager.default.fileExists(atPath: path) {
            // Patient data: owner-only from the first byte. SQLite gives the -wal and -shm files the same mode.
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let pool = try DatabasePool(path: path, configuration: StorageConfiguration.make())
        try ReplicaSchema.migrator.migrate(pool)
        return Replica(path: path, writer: pool, wall: clock)
    }

    /// Enquiries, with their notes.
    public var enquiries: Enquiries { Enquiries(replica: self) }
    /// Published content.
    public var content: ContentLibrary { ContentLibrary(replica: self) }
    /// Conflicts recorded by the server for rows in this terminal's scope.
    public var conflicts: Conflicts { Conflicts(replica: self) }

    /// Who this terminal is, or nil before enrollment.
    public func identity() throws -> ReplicaIdentity? {
        try writer.read { db in try Self.identity(db) }
    }

    static func identity(_ db: Database) throws -> ReplicaIdentity? {
        guard let replica: Int64 = try SyncMeta.get(MetaKey.replica, in: db),
              let branch: String = try SyncMeta.get(MetaKey.branch, in: db),
              let server: String = try SyncMeta.get(MetaKey.server, in: db)
        else { return nil }
        let role = (try SyncMeta.get(MetaKey.role, in: db) as String?).flatMap(DeviceRole.init(name:)) ?? .terminal
        return ReplicaIdentity(replica: ReplicaID(databaseValue: replica), branch: branch, role: role, server: server)
    }

    /// Counts for `status`.
    public func status() throws -> ReplicaStatus {
        try writer.read { db in
            ReplicaStatus(
                path: path,
                identity: try Self.identity(db),
                lastSyncAt: try SyncMeta.get(MetaKey.lastSyncAt, in: db),
                cursor: UInt64(try SyncMeta.get(MetaKey.cursor, in: db) as Int64? ?? 0),
                pendingChanges: try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_outbox") ?? 0,
                openConflicts: try Conflicts.fetch(db, replica: self, includeResolved: false).count,
                deadLetters: try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_dead_letter") ?? 0,
                enquiries: try Int.fetchOne(db, sql: "SELECT count(*) FROM enquiry") ?? 0,
                contentItems: try Int.fetchOne(db, sql: "SELECT count(*) FROM content") ?? 0)
        }
    }

    /// Changes the server refused.
    public func deadLetters() throws -> [DeadLetter] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sync_dead_letter ORDER BY counter").map { row in
                let table = TableID(rawValue: UInt8(truncatingIfNeeded: row["tbl"] as Int64))
                let column = ColumnID(UInt8(truncatingIfNeeded: row["col"] as Int64))
                return DeadLetter(
                    counter: row["counter"], table: table?.name ?? "?", row: row["row"],
                    column: column.rawValue == 0 ? "(row)" : table?.definition.column(column)?.name ?? "?",
                    reason: row["reason"], rejectedAt: row["rejected_at"])
            }
        }
    }

    // MARK: Local writes

    /// Writes cells of any replicated row as one local change (editor apps edit content this way).
    /// The server checks scope and role when it arrives; a refusal lands in ``deadLetters()``.
    public func write(_ table: TableID, _ row: String, _ cells: [(ColumnID, Value)]) throws {
        try commit([.write(table, row, cells)])
    }

    /// One local write: cells of one or more rows, or a row delete/erase, under one clock reading.
    enum LocalEdit {
        case write(TableID, String, [(ColumnID, Value)])
        case delete(TableID, String, erase: Bool)
    }

    /// Applies local edits in one transaction: app rows, cell versions and outbox entries together.
    func commit(_ edits: [LocalEdit]) throws {
        var erased = false
        try writer.write { db in
            guard let identity = try Self.identity(db) else { throw ReplicaError.notEnrolled }
            var clock = HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0))
            let version = Version(hlc: clock.tick(wall: wall.milliseconds()), replica: identity.replica)
            for edit in edits {
                switch edit {
                case .write(let table, let row, let cells):
                    for (column, value) in cells {
                        if let problem = table.definition.problem(writing: value, to: column) {
                            throw ReplicaError(.invalidValue, problem)
                        }
                    }
                    let snapshot = try applier.snapshot(of: RowKey(table, row), in: db)
                    if snapshot.tombstone != nil {
                        throw ReplicaError(.rowDeleted, "\(table.name) \(row) was deleted")
                    }
                    let changes = cells.map { column, value in
                        Change(table: table, row: row, operation: .write(column: column, value: value, baseSeq: UInt64(snapshot.cells[column]?.seq ?? 0)), version: version)
                    }
                    _ = try applier.apply(changes.map { SequencedChange($0) }, in: db)
                    for change in changes { try Outbox.append(change, in: db) }
                case .delete(let table, let row, let erase):
                    let change = Change(table: table, row: row, operation: erase ? .erase : .delete, version: version)
                    try applyDeletion(change, in: db)
                    try Outbox.append(change, in: db)
                    erased = erased || erase
                }
            }
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
        }
        if erased { try StorageConfiguration.checkpointTruncating(writer) }
    }

    /// Applies a delete or erase and, for an erase, everything erased with it; unsent edits of erased
    /// rows are dropped from the outbox, since their values must not leave this file.
    func applyDeletion(_ change: Change, seq: Int64? = nil, in db: Database) throws {
        let outcomes = try applier.apply([SequencedChange(change, seq: seq)], in: db)
        guard case .deleted(let tombstone, let cascade) = outcomes.first, tombstone.erased else { return }
        for key in [RowKey(change.table, change.row)] + cascade {
            try db.execute(sql: "DELETE FROM sync_outbox WHERE tbl = ? AND row = ? AND col > 0", arguments: [Int64(key.table.rawValue), key.row])
            try db.execute(sql: "DELETE FROM sync_dead_letter WHERE tbl = ? AND row = ?", arguments: [Int64(key.table.rawValue), key.row])
        }
        for key in cascade {
            _ = try applier.apply([SequencedChange(Change(table: key.table, row: key.row, operation: .erase, version: tombstone.version))], in: db)
        }
    }

    /// Removes a row that left this terminal's scope, without a tombstone: it lives on elsewhere.
    func purge(_ key: RowKey, in db: Database) throws {
        try db.execute(sql: "DELETE FROM \(key.table.name) WHERE id = ?", arguments: [key.row])
        try db.execute(sql: "DELETE FROM sync_cell WHERE tbl = ? AND row = ?", arguments: [Int64(key.table.rawValue), key.row])
    }
}

enum Outbox {
    static func append(_ change: Change, in db: Database) throws {
        let column: Int64, value: Value, baseSeq: UInt64
        switch change.operation {
        case .write(let c, let v, let b): (column, value, baseSeq) = (Int64(c.rawValue), v, b)
        case .delete: (column, value, baseSeq) = (0, .integer(1), 0)
        case .erase: (column, value, baseSeq) = (0, .integer(2), 0)
        }
        try db.cachedStatement(sql: "INSERT INTO sync_outbox (tbl, row, col, value, hlc, base_seq) VALUES (?, ?, ?, ?, ?, ?)")
            .execute(arguments: [Int64(change.table.rawValue), change.row, column, value, change.version.hlc.databaseValue, Int64(baseSeq)])
    }

    /// The oldest `limit` entries, as the changes to push.
    static func batch(limit: Int, replica: ReplicaID, in db: Database) throws -> [PushedChange] {
        try Row.fetchAll(db, sql: "SELECT * FROM sync_outbox ORDER BY counter LIMIT ?", arguments: [limit]).compactMap { row in
            guard let table = TableID(rawValue: UInt8(truncatingIfNeeded: row["tbl"] as Int64)) else { return nil }
            let column: Int64 = row["col"]
            let value = Value.fromDatabaseValue(row["value"]) ?? .null
            let operation: Change.Operation =
                column == 0 ? (value == .integer(2) ? .erase : .delete)
                : .write(column: ColumnID(UInt8(truncatingIfNeeded: column)), value: value, baseSeq: UInt64(row["base_seq"] as Int64))
            return PushedChange(
                counter: UInt64(row["counter"] as Int64),
                change: Change(table: table, row: row["row"], operation: operation,
                               version: Version(hlc: HLC(databaseValue: row["hlc"]), replica: replica)))
        }
    }
}
