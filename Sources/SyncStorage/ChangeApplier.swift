import GRDB
import SyncCore

/// A stored cell version, as `sync_cell` holds it.
package struct StoredCell: Hashable, Sendable {
    /// The value, where the store keeps values (the server); nil on terminals.
    package var value: Value?
    package var version: Version
    package var seq: Int64
}

/// A change with where it sits in the server's sequence.
package struct SequencedChange: Sendable {
    package var change: Change
    /// The server seq of this version; nil keeps the stored seq (a local write has none yet).
    package var seq: Int64?
    /// The branch the row belongs to ('' for every branch); nil leaves it as stored. Server only.
    package var scope: String?

    package init(_ change: Change, seq: Int64? = nil, scope: String? = nil) {
        self.change = change
        self.seq = seq
        self.scope = scope
    }
}

/// The one implementation of "apply a batch of changes to SQLite under the merge rule" (invariant 1),
/// used by the server's store and by terminals alike. It decides with ``MergeRule`` and keeps the
/// app tables, `sync_cell` and tombstones in step, inside the caller's transaction.
/// Decides a cell write from the incoming version, the current one and the row's tombstone.
public typealias WriteDecider = @Sendable (_ incoming: Version, _ current: Version?, _ tombstone: Tombstone?) -> MergeRule.WriteDecision

package struct ChangeApplier: Sendable {
    /// What applying one change did.
    package enum Outcome: Hashable, Sendable {
        /// The write became the cell's value. `previous` is what it replaced.
        case applied(previous: StoredCell?)
        /// A newer version is stored; the write lost.
        case keptCurrent(StoredCell)
        /// This exact version was already stored (its seq may have been updated).
        case duplicate
        /// The write met a deleted row: the caller records it, never drops it silently.
        case rowDeleted(Tombstone)
        /// A delete or erase; the row's tombstone is now `tombstone`. An erase of an enquiry lists
        /// the rows that must be erased with it (its notes, and conflict records about them all).
        case deleted(Tombstone, cascade: [RowKey])
    }

    /// Whether `sync_cell.value` holds values (the server serves pulls from it).
    package var keepsValues: Bool
    /// Whether a duplicate arriving with a higher seq takes that seq: terminals do, when their own
    /// write comes back from the server; the server never renumbers a replayed push.
    package var reSequencesDuplicates: Bool
    /// How a cell write is decided: the one ``MergeRule``. A seam, not a switch: the simulator's
    /// self-test injects a broken rule from its test target to prove its checks catch one.
    package var decideWrite: WriteDecider = MergeRule.decide(write:current:tombstone:)

    package init(keepsValues: Bool, reSequencesDuplicates: Bool) {
        self.keepsValues = keepsValues
        self.reSequencesDuplicates = reSequencesDuplicates
    }

    private func decide(write incoming: Version, current: Version?, tombstone: Tombstone?) -> MergeRule.WriteDecision {
        decideWrite(incoming, current, tombstone)
    }

    /// Applies `changes` in order, returning one outcome per change. Consecutive changes to one row
    /// are applied together: one read of the row's versions, one write of its app row.
    package func apply(_ changes: [SequencedChange], in db: Database) throws -> [Outcome] {
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(changes.count)
        var start = changes.startIndex
        while start < changes.endIndex {
            let key = RowKey(changes[start].change.table, changes[start].change.row)
            var end = start + 1
            while end < changes.endIndex && changes[end].change.table == key.table && changes[end].change.row == key.row {
                end += 1
            }
            try applyRow(key, changes[start..<end], in: db, into: &outcomes)
            start = end
        }
        return outcomes
    }

    /// The stored versions of one row.
    package func snapshot(of key: RowKey, in db: Database) throws -> RowSnapshot {
        var snapshot = RowSnapshot()
        let statement = try db.cachedStatement(sql: "SELECT col, value, hlc, replica, seq, scope FROM sync_cell WHERE tbl = ? AND row = ?")
        let rows = try Row.fetchCursor(statement, arguments: [Int64(key.table.rawValue), key.row])
        while let row = try rows.next() {
            let column: Int64 = row[0]
            let value = Value.fromDatabaseValue(row[1]) ?? .null
            let version = Version(hlc: HLC(databaseValue: row[2]), replica: ReplicaID(databaseValue: row[3]))
            let seq: Int64 = row[4]
            snapshot.scope = row[5]
            if column == 0 {
                snapshot.tombstone = Tombstone(version: version, erased: value == .integer(2))
                snapshot.tombstoneSeq = seq
            } else {
                snapshot.cells[ColumnID(UInt8(truncatingIfNeeded: column))] = StoredCell(value: keepsValues ? value : nil, version: version, seq: seq)
            }
        }
        return snapshot
    }

    private func applyRow(_ key: RowKey, _ changes: ArraySlice<SequencedChange>, in db: Database, into outcomes: inout [Outcome]) throws {
        var snapshot = try snapshot(of: key, in: db)
        let definition = key.table.definition
        var won: [ColumnID: (Value, SequencedChange)] = [:]
        var seqBumps: [(ColumnID, Int64)] = []
        var newTombstone: (Tombstone, SequencedChange)? = nil

        for sequenced in changes {
            let change = sequenced.change
            switch change.operation {
            case .write(let column, let value, _):
                precondition(definition.column(column) != nil, "callers validate columns before applying")
                let current = snapshot.cells[column]
                switch decide(write: change.version, current: current?.version, tombstone: snapshot.tombstone) {
                case .apply:
                    won[column] = (value, sequenced)
                    snapshot.cells[column] = StoredCell(
                        value: keepsValues ? value : nil, version: change.version, seq: sequenced.seq ?? current?.seq ?? 0)
                    outcomes.append(.applied(previous: current))
                case .keepCurrent:
                    outcomes.append(.keptCurrent(current!))
                case .duplicate:
                    if reSequencesDuplicates, let seq = sequenced.seq, seq > current!.seq {
                        snapshot.cells[column]!.seq = seq
                        if won[column] != nil { won[column]!.1.seq = seq } else { seqBumps.append((column, seq)) }
                    }
                    outcomes.append(.duplicate)
                case .rowDeleted(let tombstone):
                    outcomes.append(.rowDeleted(tombstone))
                }
            case .delete, .erase:
                let incoming = Tombstone(version: change.version, erased: change.operation == .erase)
                let merged = MergeRule.decide(delete: incoming, current: snapshot.tombstone)
                if merged != snapshot.tombstone {
                    var stamped = sequenced
                    stamped.seq = sequenced.seq ?? snapshot.tombstoneSeq ?? 0
                    newTombstone = (merged, stamped)
                    snapshot.tombstone = merged
                    snapshot.tombstoneSeq = stamped.seq
                } else if reSequencesDuplicates, let seq = sequenced.seq, seq > (snapshot.tombstoneSeq ?? 0), let tombstone = snapshot.tombstone {
                    newTombstone = (tombstone, sequenced)
                    snapshot.tombstoneSeq = seq
                }
                won.removeAll()
                seqBumps.removeAll()
                let cascade = merged.erased && snapshot.tombstone == merged ? try erasureCascade(of: key, in: db) : []
                outcomes.append(.deleted(merged, cascade: cascade))
            }
        }

        if let (tombstone, sequenced) = newTombstone {
            try db.execute(sql: "DELETE FROM \(definition.name) WHERE id = ?", arguments: [key.row])
            try db.execute(sql: "DELETE FROM sync_cell WHERE tbl = ? AND row = ? AND col > 0", arguments: [Int64(key.table.rawValue), key.row])
            try upsertCell(key, column: 0, value: .integer(tombstone.erased ? 2 : 1), version: tombstone.version,
                           seq: sequenced.seq ?? 0, scope: sequenced.scope ?? snapshot.scope, in: db)
            return
        }
        guard !won.isEmpty || !seqBumps.isEmpty else { return }
        if !won.isEmpty {
            let columns = won.keys.sorted()
            let names = columns.map { definition.column($0)!.name }
            let sql = "INSERT INTO \(definition.name) (id, \(names.joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: names.count))) "
                + "ON CONFLICT(id) DO UPDATE SET \(names.map { "\($0) = excluded.\($0)" }.joined(separator: ", "))"
            var arguments: StatementArguments = [key.row]
            for column in columns { arguments += [won[column]!.0] }
            try db.cachedStatement(sql: sql).execute(arguments: arguments)
            // One statement for all of the row's cells: per-statement cost dominated the profile.
            var cells = StatementArguments()
            for column in columns {
                let (value, sequenced) = won[column]!
                let cell = snapshot.cells[column]!
                cells += [Int64(key.table.rawValue), key.row, Int64(column.rawValue), keepsValues ? value : .null,
                          cell.version.hlc.databaseValue, cell.version.replica.databaseValue, cell.seq, sequenced.scope ?? snapshot.scope]
            }
            try db.cachedStatement(sql: Self.upsertCellsSQL(count: columns.count)).execute(arguments: cells)
        }
        for (column, seq) in seqBumps {
            try db.cachedStatement(sql: "UPDATE sync_cell SET seq = ? WHERE tbl = ? AND row = ? AND col = ?")
                .execute(arguments: [seq, Int64(key.table.rawValue), key.row, Int64(column.rawValue)])
        }
    }

    static func upsertCellsSQL(count: Int) -> String {
        "INSERT INTO sync_cell (tbl, row, col, value, hlc, replica, seq, scope) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?)", count: count).joined(separator: ", ")
            + " ON CONFLICT (tbl, row, col) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, replica = excluded.replica, seq = excluded.seq, scope = excluded.scope"
    }

    private func upsertCell(_ key: RowKey, column: UInt8, value: Value, version: Version, seq: Int64, scope: String?, in db: Database) throws {
        let stored: Value = keepsValues || column == 0 ? value : .null
        try db.cachedStatement(sql: """
            INSERT INTO sync_cell (tbl, row, col, value, hlc, replica, seq, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (tbl, row, col) DO UPDATE SET
                value = excluded.value, hlc = excluded.hlc, replica = excluded.replica, seq = excluded.seq, scope = excluded.scope
            """).execute(arguments: [
                Int64(key.table.rawValue), key.row, Int64(column), stored, version.hlc.databaseValue,
                version.replica.databaseValue, seq, scope,
            ])
    }

    /// The rows erased with `key`: an enquiry's notes, and conflict records about any of them.
    private func erasureCascade(of key: RowKey, in db: Database) throws -> [RowKey] {
        var rows = [key.row]
        var cascade: [RowKey] = []
        if key.table == .enquiry {
            let notes = try String.fetchAll(db, sql: "SELECT id FROM enquiry_note WHERE enquiry = ?", arguments: [key.row])
            rows += notes
            cascade += notes.map { RowKey(.enquiryNote, $0) }
        }
        guard key.table != .conflict else { return cascade }
        let placeholders = Array(repeating: "?", count: rows.count).joined(separator: ", ")
        let conflicts = try String.fetchAll(db, sql: "SELECT id FROM sync_conflict WHERE row_id IN (\(placeholders))", arguments: StatementArguments(rows))
        cascade += conflicts.map { RowKey(.conflict, $0) }
        return cascade
    }
}

/// The stored versions of one row, as the merge rule needs them.
package struct RowSnapshot: Sendable {
    package var cells: [ColumnID: StoredCell] = [:]
    package var tombstone: Tombstone?
    package var tombstoneSeq: Int64?
    package var scope: String?
}
