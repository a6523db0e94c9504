import Crypto
import Foundation
import GRDB
import SyncCore
import SyncStorage

/// One server write transaction: hands out seqs and clock readings, applies changes through the
/// shared ``ChangeApplier``, records conflicts, moves rows between branches and cascades erasures.
/// `finish()` persists the seq and clock high-water marks in the same transaction.
struct WriteSession {
    let db: Database
    let applier: ChangeApplier
    let wall: any WallClock
    let serverReplica: ReplicaID
    private(set) var hlc: HybridLogicalClock
    private(set) var lastSeq: Int64
    private let restoredAtSeq: Int64?
    private(set) var conflictsRecorded = 0
    /// Enquiries this session erased, for the erasure ledger: written by the caller once the write that
    /// holds them has committed (a push's savepoint can roll back inside a shared transaction).
    private(set) var erased: [ErasureLedger.Entry] = []
    /// The device whose push this is, for the audit log; nil for the server's own writes.
    var actor: String?

    init(db: Database, store: SQLiteServerStore) throws {
        self.db = db
        applier = store.applier
        wall = store.clock
        serverReplica = try SQLiteServerStore.serverReplica(db)
        hlc = try SQLiteServerStore.hybridClock(db)
        lastSeq = try SyncMeta.get("last_seq", in: db) ?? 0
        restoredAtSeq = try SyncMeta.get(SQLiteServerStore.restoredAtSeqKey, in: db)
    }

    /// What a write's author had seen. A re-sent version (base seq 2^63 − 1, SPEC 7.9) saw all the
    /// history the store lost, but nothing stored since it was restored: a write that arrived first,
    /// concurrent with it, still records its conflict.
    func base(_ baseSeq: UInt64) -> Int64 {
        baseSeq == UInt64(Int64.max) ? (restoredAtSeq ?? Int64.max) : Int64(baseSeq)
    }

    /// Whether this store was ever found, or marked, restored from an older copy (SPEC 7.9).
    var wasRestored: Bool { restoredAtSeq != nil }

    mutating func tick() -> HLC { hlc.tick(wall: wall.milliseconds()) }

    mutating func receive(_ remote: HLC) {
        // Drift was checked before the transaction began.
        try? hlc.receive(remote, wall: wall.milliseconds())
    }

    mutating func nextSeq() -> Int64 {
        lastSeq += 1
        return lastSeq
    }

    func finish() throws {
        try SyncMeta.set("last_seq", lastSeq, in: db)
        try SyncMeta.set("last_hlc", hlc.last.databaseValue, in: db)
    }

    /// The branch a stored row belongs to ('' for every branch), or nil if the row is unknown.
    func storedScope(of key: RowKey) throws -> String? {
        try String.fetchOne(
            db.cachedStatement(sql: "SELECT scope FROM sync_cell WHERE tbl = ? AND row = ? LIMIT 1"),
            arguments: [Int64(key.table.rawValue), key.row])
    }

    /// The branch a row belongs to ('' for every branch): as stored, or for a new row as the batch
    /// it arrives in names it. Nil when it cannot be placed: an enquiry with no branch, or a note
    /// whose enquiry is unknown or deleted.
    func scope(of key: RowKey, pending: PendingRows) throws -> String? {
        if let stored = try storedScope(of: key) {
            return stored
        }
        switch key.table {
        case .branch: return ""
        case .content: return pending.branches[key] ?? ""
        case .enquiry: return pending.branches[key]
        case .conflict: return nil
        case .enquiryNote:
            guard let enquiry = pending.noteEnquiries[key] else { return nil }
            let enquiryKey = RowKey(.enquiry, enquiry)
            if try isDeleted(enquiryKey) { return nil }
            return try storedScope(of: enquiryKey) ?? pending.branches[enquiryKey]
        }
    }

    /// The enquiry a stored note belongs to.
    func noteEnquiry(_ key: RowKey) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT enquiry FROM enquiry_note WHERE id = ?"), arguments: [key.row])
    }

    func isDeleted(_ key: RowKey) throws -> Bool {
        try version(of: key, column: ColumnID(0)) != nil
    }

    /// The stored version of one cell (column 0: the row's tombstone).
    func version(of key: RowKey, column: ColumnID) throws -> Version? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT hlc, replica FROM sync_cell WHERE tbl = ? AND row = ? AND col = ?"),
            arguments: [Int64(key.table.rawValue), key.row, Int64(column.rawValue)]
        ).map { Version(hlc: HLC(databaseValue: $0[0]), replica: ReplicaID(databaseValue: $0[1])) }
    }

    /// Applies changes; `scopes` gives the branch of each new row. `detectConflicts` is off for the
    /// server's own writes, which are authoritative.
    mutating func apply(_ changes: [(Change, String?)], detectConflicts: Bool = false) throws {
        var index = 0
        while index < changes.count {
            let key = RowKey(changes[index].0.table, changes[index].0.row)
            var end = index + 1
            while end < changes.count && RowKey(changes[end].0.table, changes[end].0.row) == key { end += 1 }
            let run = Array(changes[index..<end])
            index = end

            let stored = try storedScope(of: key)
            let scope = stored ?? run.first(where: { $0.1 != nil })?.1 ?? ""
            let sequenced = run.map { SequencedChange($0.0, seq: nextSeq(), scope: scope) }
            let outcomes = try applier.apply(sequenced, in: db)
            var current = scope
            let branchColumn = key.table.definition.branchColumn
            // By index, not over zip(...): Swift 6.3's optimizer crashes on the borrowed tuple in release builds.
            for position in sequenced.indices {
                let change = sequenced[position].change
                let movesRow = branchColumn != nil && change.column == branchColumn
                try handle(outcomes[position], of: change, scope: current, detectConflicts: detectConflicts)
                // A move re-scopes the row: what follows in this run belongs to its new branch.
                if movesRow { current = try storedScope(of: key) ?? current }
            }
        }
    }

    /// Audits the erasure and keeps it for the erasure ledger, so a later restore replays it.
    private mutating func recordErasure(of row: String, in branch: String) throws {
        let now = Double(wall.milliseconds()) / 1000
        try SQLiteServerStore.audit("enquiry_erased", device: actor, branch: branch, detail: ["row": row, "by": actor == nil ? "admin" : "device"], at: now, db: db)
        erased.append(ErasureLedger.Entry(table: TableID.enquiry.name, row: row, branch: branch, erasedAt: Date(timeIntervalSince1970: now)))
    }

    private mutating func handle(_ outcome: ChangeApplier.Outcome, of change: Change, scope: String, detectConflicts: Bool) throws {
        guard case .write(let column, let value, let baseSeq) = change.operation else {
            if case .deleted(let tombstone, let cascade) = outcome, !cascade.isEmpty {
                let erasures = cascade.map { key in
                    (Change(table: key.table, row: key.row, operation: .erase, version: tombstone.version), Optional<String>.none)
                }
                try apply(erasures)
            }
            if case .deleted(let tombstone, _) = outcome, tombstone.erased, change.table == .enquiry {
                try recordErasure(of: change.row, in: scope)
                // Branches the enquiry left earlier can still hold traces of it (refused writes in their
                // dead letters): send them an exit too, so their terminals purge and checkpoint (invariant 9).
                let former = try String.fetchAll(db, sql: "SELECT DISTINCT branch FROM sync_exit WHERE tbl = ? AND row = ? AND branch != ? ORDER BY branch",
                                                 arguments: [Int64(change.table.rawValue), change.row, scope])
                for branch in former {
                    try db.execute(sql: "INSERT INTO sync_exit (seq, tbl, row, branch) VALUES (?, ?, ?, ?)",
                                   arguments: [nextSeq(), Int64(change.table.rawValue), change.row, branch])
                }
            }
            return
        }
        let seen = base(baseSeq)
        switch outcome {
        case .applied(let previous):
            if detectConflicts, let previous, seen < previous.seq,
               previous.version.replica != change.version.replica, previous.value != value
            {
                try recordConflict(change, column: column, winner: (value, change.version), loser: (previous.value ?? .null, previous.version), scope: scope)
            } else {
                try resolveOpenConflicts(change, column: column, scope: scope)
            }
            if column == change.table.definition.branchColumn, let previous, previous.value != value {
                try move(RowKey(change.table, change.row), from: previous.value?.text ?? "", to: value.text ?? "")
            }
        case .keptCurrent(let current):
            if detectConflicts, seen < current.seq, current.version.replica != change.version.replica,
               current.value != value
            {
                try recordConflict(change, column: column, winner: (current.value ?? .null, current.version), loser: (value, change.version), scope: scope)
            }
        case .rowDeleted(let tombstone):
            // The delete wins, but the write is recorded, never silently dropped. An erased row keeps nothing.
            if !tombstone.erased {
                try recordConflict(change, column: column, winner: (.null, tombstone.version), loser: (value, change.version), scope: scope)
            }
        case .duplicate, .deleted:
            break
        }
    }

    /// A stable id per (cell, losing version), so recording the same conflict twice is idempotent.
    static func conflictID(_ table: TableID, _ row: String, _ column: ColumnID, _ loser: Version) -> String {
        let digest = SHA256.hash(data: Data("\(table.rawValue)|\(row)|\(column.rawValue)|\(loser)".utf8))
        let bytes = Array(digest.prefix(16))
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }

    private mutating func recordConflict(_ change: Change, column: ColumnID, winner: (Value, Version), loser: (Value, Version), scope: String) throws {
        let id = Self.conflictID(change.table, change.row, column, loser.1)
        // The same losing version again (re-sent after a restore of its author's file or of this store,
        // SPEC 7.8, 7.9) is a duplicate, and a duplicate is never a conflict (7.2): its record stands as
        // written. Writing it again would re-open a resolved conflict and re-name the winner after
        // whatever beats the loser now (a later version, the row's later tombstone).
        if try self.version(of: RowKey(.conflict, id), column: Columns.Conflict.rowID) != nil { return }
        let version = Version(hlc: tick(), replica: serverReplica)
        let columnName = change.table.definition.column(column)?.name ?? String(column.rawValue)
        let cells: [(ColumnID, Value)] = [
            (Columns.Conflict.tableName, .text(change.table.name)), (Columns.Conflict.rowID, .text(change.row)),
            (Columns.Conflict.columnName, .text(columnName)),
            (Columns.Conflict.winnerValue, winner.0), (Columns.Conflict.winnerReplica, .text(winner.1.replica.description)),
            (Columns.Conflict.winnerHLC, .integer(winner.1.hlc.databaseValue)),
            (Columns.Conflict.loserValue, loser.0), (Columns.Conflict.loserReplica, .text(loser.1.replica.description)),
            (Columns.Conflict.loserHLC, .integer(loser.1.hlc.databaseValue)),
            (Columns.Conflict.branch, .text(scope)), (Columns.Conflict.resolved, .integer(0)),
            (Columns.Conflict.detectedAt, .text(Timestamp.iso8601(milliseconds: version.hlc.milliseconds))),
        ]
        let sequenced = cells.map { cell in
            SequencedChange(
                Change(table: .conflict, row: id, operation: .write(column: cell.0, value: cell.1, baseSeq: 0), version: version),
                seq: nextSeq(), scope: scope)
        }
        _ = try applier.apply(sequenced, in: db)
        conflictsRecorded += 1
    }

    /// An ordinary newer write to a cell resolves the conflicts recorded on it.
    private mutating func resolveOpenConflicts(_ change: Change, column: ColumnID, scope: String) throws {
        let columnName = change.table.definition.column(column)?.name ?? ""
        let open = try Row.fetchAll(db, sql: """
            SELECT id, winner_hlc, winner_replica FROM sync_conflict
            WHERE row_id = ? AND table_name = ? AND column_name = ? AND resolved = 0
            """, arguments: [change.row, change.table.name, columnName])
        guard !open.isEmpty else { return }
        let version = Version(hlc: tick(), replica: serverReplica)
        for row in open {
            let winner = Version(hlc: HLC(databaseValue: row["winner_hlc"]), replica: ReplicaID(row["winner_replica"] as String) ?? ReplicaID(0))
            guard change.version > winner else { continue }
            let id: String = row["id"]
            let resolve = Change(table: .conflict, row: id, operation: .write(column: Columns.Conflict.resolved, value: .integer(1), baseSeq: 0), version: version)
            // The flag goes wherever the conflict row lives: a cell in another scope would reach a branch
            // that holds none of the row (a record of nothing but `resolved`), and miss the one that does.
            let conflictScope = try storedScope(of: RowKey(.conflict, id)) ?? scope
            _ = try applier.apply([SequencedChange(resolve, seq: nextSeq(), scope: conflictScope)], in: db)
        }
    }

    /// A row changed branch: it, its notes and conflicts get new seqs in the new scope, so that
    /// branch pulls them, and the old branch is told to purge them.
    private mutating func move(_ key: RowKey, from old: String, to new: String) throws {
        var rows: [RowKey] = [key]
        if key.table == .enquiry {
            rows += try String.fetchAll(db, sql: "SELECT id FROM enquiry_note WHERE enquiry = ?", arguments: [key.row]).map { RowKey(.enquiryNote, $0) }
        }
        let rowIDs = rows.map(\.row)
        let placeholders = Array(repeating: "?", count: rowIDs.count).joined(separator: ", ")
        rows += try String.fetchAll(db, sql: "SELECT id FROM sync_conflict WHERE row_id IN (\(placeholders))", arguments: StatementArguments(rowIDs))
            .map { RowKey(.conflict, $0) }
        let oldBranches = old.isEmpty ? try String.fetchAll(db, sql: "SELECT id FROM branch WHERE id != ?", arguments: [new]) : [old]
        for row in rows {
            let columns = try Int64.fetchAll(db, sql: "SELECT col FROM sync_cell WHERE tbl = ? AND row = ? ORDER BY col", arguments: [Int64(row.table.rawValue), row.row])
            for column in columns {
                try db.execute(sql: "UPDATE sync_cell SET scope = ?, seq = ? WHERE tbl = ? AND row = ? AND col = ?",
                               arguments: [new, nextSeq(), Int64(row.table.rawValue), row.row, column])
            }
            guard !new.isEmpty else { continue }
            for branch in oldBranches where branch != new {
                try db.execute(sql: "INSERT INTO sync_exit (seq, tbl, row, branch) VALUES (?, ?, ?, ?)",
                               arguments: [nextSeq(), Int64(row.table.rawValue), row.row, branch])
            }
        }
        // A conflict record names its row's branch (its scope column): it moves with the row.
        let moved = rows.filter { $0.table == .conflict }
        if !moved.isEmpty {
            let version = Version(hlc: tick(), replica: serverReplica)
            for row in moved {
                let change = Change(table: .conflict, row: row.row, operation: .write(column: Columns.Conflict.branch, value: .text(new), baseSeq: 0), version: version)
                _ = try applier.apply([SequencedChange(change, seq: nextSeq(), scope: new)], in: db)
            }
        }
    }
}

/// What a batch of changes says about rows that are not stored yet: their branch, and for notes
/// their enquiry. A row's scope is fixed by these when its first cells arrive.
struct PendingRows {
    var branches: [RowKey: String] = [:]
    var noteEnquiries: [RowKey: String] = [:]

    init(_ changes: some Sequence<Change>) {
        for change in changes {
            guard case .write(let column, let value, _) = change.operation else { continue }
            let key = RowKey(change.table, change.row)
            if column == change.table.definition.branchColumn {
                branches[key] = value.text ?? ""
            } else if change.table == .enquiryNote && column == Columns.Note.enquiry, let enquiry = value.text {
                noteEnquiries[key] = enquiry
            }
        }
    }
}
