import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncStorage

/// A row as a store holds it: its cells' values and versions, or its tombstone, and its scope.
struct StoredRow: Hashable {
    var cells: [UInt8: CellVersion] = [:]
    var tombstone: Tombstone?
    var scope: String?
}

/// A conflict record as the server holds it.
struct StoredConflict: Hashable {
    var id: String
    var table: String
    var row: String
    var column: String
    var winner: Version
    var winnerValue: Value
    var loser: Version
}

/// The server's final state, read straight from its file.
struct ServerSnapshot {
    var rows: [RowKey: StoredRow] = [:]
    var conflicts: [StoredConflict] = []

    func isErased(_ key: RowKey) -> Bool { rows[key]?.tombstone?.erased == true }

    /// Whether an enquiry, or the enquiry a note belongs to, was erased.
    func isErased(enquiryOf key: RowKey, noteEnquiries: [String: String]) -> Bool {
        if key.table == .enquiryNote, let enquiry = noteEnquiries[key.row] { return isErased(RowKey(.enquiry, enquiry)) }
        return isErased(key)
    }
}

extension Simulation {
    /// The app tables compared between replicas, in dump order.
    static let dumpedTables: [TableID] = [.branch, .content, .enquiry, .enquiryNote, .conflict]

    /// Runs every invariant check (after ``quiesce()``) and returns what is broken, with the clock and
    /// error violations found while running.
    public func check() async throws -> [Violation] {
        var found = violations
        found += network.withState { $0.serverFailures.map { Violation(check: "server-error", message: $0) } }
        let server = try readServer()
        let (knowledge, labels) = network.withState { ($0.knowledge, $0.labels) }
        found += try checkOutboxes(knowledge, server: server, labels: labels)
        found += checkOracle(knowledge, server: server, labels: labels)
        found += checkConflicts(knowledge, server: server, labels: labels)
        found += try checkScopeAndShape(server: server, labels: labels)
        found += try checkConvergence(labels: labels)
        found += try checkNotes(knowledge, server: server, labels: labels)
        found += try checkErasedText(server: server, labels: labels)
        var unique: [Violation] = []
        for violation in found where !unique.contains(violation) { unique.append(violation) }
        return unique
    }

    // MARK: Reading stores

    func readServer() throws -> ServerSnapshot {
        try serverDatabase().read { db in
            var snapshot = ServerSnapshot()
            let cells = try Row.fetchAll(db, sql: "SELECT tbl, row, col, value, hlc, replica, scope FROM sync_cell WHERE tbl IN (3, 4)")
            for cell in cells {
                guard let table = TableID(rawValue: UInt8(truncatingIfNeeded: cell["tbl"] as Int64)) else { continue }
                let key = RowKey(table, cell["row"])
                let version = Version(hlc: HLC(databaseValue: cell["hlc"]), replica: ReplicaID(databaseValue: cell["replica"]))
                let value = Value.fromDatabaseValue(cell["value"]) ?? .null
                let column = UInt8(truncatingIfNeeded: cell["col"] as Int64)
                var row = snapshot.rows[key] ?? StoredRow()
                row.scope = cell["scope"]
                if column == 0 {
                    row.tombstone = Tombstone(version: version, erased: value == .integer(2))
                } else {
                    row.cells[column] = CellVersion(value: value, version: version)
                }
                snapshot.rows[key] = row
            }
            snapshot.conflicts = try Row.fetchAll(db, sql: "SELECT * FROM sync_conflict ORDER BY id").map { row in
                StoredConflict(
                    id: row["id"], table: row["table_name"] ?? "", row: row["row_id"] ?? "", column: row["column_name"] ?? "",
                    winner: Version(hlc: HLC(databaseValue: row["winner_hlc"] ?? 0), replica: ReplicaID(row["winner_replica"] ?? "") ?? ReplicaID(0)),
                    winnerValue: Value.fromDatabaseValue(row["winner_value"]) ?? .null,
                    loser: Version(hlc: HLC(databaseValue: row["loser_hlc"] ?? 0), replica: ReplicaID(row["loser_replica"] ?? "") ?? ReplicaID(0)))
            }
            return snapshot
        }
    }

    /// A canonical dump of a database's app tables: one line per row, sorted, values typed.
    /// `scope` restricts it to what a device of that branch may hold (the server's rows, by `sync_cell.scope`).
    static func dump(_ db: Database, scope: String? = nil) throws -> [String: String] {
        var lines: [String: String] = [:]
        for table in dumpedTables {
            let filter = scope == nil ? "" : "WHERE id IN (SELECT row FROM sync_cell WHERE tbl = \(table.rawValue) AND (scope = '' OR scope = ?))"
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM \(table.name) \(filter) ORDER BY id", arguments: scope.map { [$0] } ?? [])
            for row in rows {
                let id: String = row["id"]
                let cells = row.columnNames.filter { $0 != "id" }.map { "\($0)=\(render(row[$0]))" }
                lines["\(table.name)|\(id)"] = cells.joined(separator: " ")
            }
        }
        return lines
    }

    static func render(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: "null"
        case .int64(let integer): String(integer)
        case .double(let real): String(real)
        case .string(let text): "\"\(text)\""
        case .blob(let data): "x'" + data.map { String($0, radix: 16) }.joined() + "'"
        }
    }

    // MARK: Checks

    /// Every outbox is empty, and every local write was acknowledged or refused (or withdrawn by an erasure).
    func checkOutboxes(_ knowledge: Knowledge, server: ServerSnapshot, labels: Labels) throws -> [Violation] {
        var found: [Violation] = []
        for device in devices {
            let pending = try device.replica.status().pendingChanges
            if pending > 0 { found.append(Violation(check: "outbox-drained", message: "\(device.name) still has \(pending) unacknowledged changes")) }
            let deadLetters = Set(try device.replica.writer.read { db in try Int64.fetchAll(db, sql: "SELECT counter FROM sync_dead_letter") }.map(UInt64.init))
            // Ghosts (writes of a file since rolled back) left their outbox and dead letters with that file.
            for key in knowledge.writes.keys.sorted() where knowledge.writes[key]!.device == device.name && key.counter < Knowledge.ghostBase {
                let write = knowledge.writes[key]!
                let row = RowKey(write.change.table, write.change.row)
                let enquiry = write.change.table == .enquiryNote ? labels.noteEnquiry[write.change.row] ?? write.change.row : write.change.row
                let withdrawn = server.isErased(enquiryOf: row, noteEnquiries: labels.noteEnquiry) || knowledge.writes.values.contains { other in
                    other.device == write.device && other.key.counter > key.counter && other.change.table == .enquiry
                        && other.change.row == enquiry && other.change.operation == .erase
                }
                switch write.status {
                case .pending where !withdrawn:
                    found.append(Violation(
                        check: "no-silent-loss",
                        message: "\(device.name)'s write of \(labels.label(write.change.row)).\(CellKey(write.change).columnName) (step \(write.step)) was never acknowledged",
                        rows: [labels.enquiryLabel(of: write.change.row)]))
                case .rejected(let reason) where !withdrawn && !deadLetters.contains(key.counter):
                    found.append(Violation(
                        check: "dead-letters",
                        message: "\(device.name)'s write of \(labels.label(write.change.row)).\(CellKey(write.change).columnName) was rejected (\(reason.name)) but is not in its dead-letter table",
                        rows: [labels.enquiryLabel(of: write.change.row)]))
                default:
                    break
                }
            }
        }
        return found
    }

    /// The server holds exactly the merge, by the merge rule, of every acknowledged change: each
    /// acknowledged write is present or superseded by a higher version; deletes and erasures hold.
    func checkOracle(_ knowledge: Knowledge, server: ServerSnapshot, labels: Labels) -> [Violation] {
        var found: [Violation] = []
        let keys = Set(knowledge.oracle.rows.keys).union(server.rows.keys).sorted()
        for key in keys {
            let rowLabel = labels.label(key.row)
            let rows = [labels.enquiryLabel(of: key.row)]
            let stored = server.rows[key]
            switch knowledge.oracle.rows[key] {
            case nil:
                found.append(Violation(check: "no-phantoms", message: "the server holds \(key.table.name) \(rowLabel), which no acknowledged write created", rows: rows))
            case .deleted(let tombstone):
                // A note erased with its enquiry, which a restored store never held: nothing is as good as
                // a tombstone (no text; a late copy of the note is refused, its enquiry being erased).
                if stored == nil, tombstone.erased, key.table == .enquiryNote, server.isErased(enquiryOf: key, noteEnquiries: labels.noteEnquiry) { continue }
                if stored?.tombstone != tombstone || stored?.cells.isEmpty == false {
                    found.append(Violation(
                        check: "no-silent-loss",
                        message: "\(rowLabel) should be \(tombstone.erased ? "erased" : "deleted") at \(tombstone.version); the server holds \(describe(stored))",
                        rows: rows))
                }
            case .live(let cells):
                if let tombstone = stored?.tombstone {
                    found.append(Violation(check: "no-silent-loss", message: "\(rowLabel) was never deleted, yet the server holds a tombstone at \(tombstone.version)", rows: rows))
                    continue
                }
                for (column, expected) in cells.sorted(by: { $0.key < $1.key }) {
                    let name = key.table.definition.column(column)?.name ?? "\(column.rawValue)"
                    guard let actual = stored?.cells[column.rawValue] else {
                        found.append(Violation(check: "no-silent-loss", message: "\(rowLabel).\(name): the acknowledged write \(expected.value) at \(expected.version) is missing on the server", rows: rows))
                        continue
                    }
                    if actual != expected {
                        let author = knowledge.writes.values.first { $0.change.version == expected.version && CellKey($0.change).column == column.rawValue && $0.change.row == key.row }
                        found.append(Violation(
                            check: "no-silent-loss",
                            message: "\(rowLabel).\(name): the server holds \(actual.value) at \(actual.version), but the highest acknowledged version is \(expected.value) at \(expected.version)"
                                + (author.map { " (\($0.device), step \($0.step))" } ?? ""),
                            rows: rows))
                    }
                }
                let extra = (stored?.cells.keys.map { $0 } ?? []).filter { cells[ColumnID($0)] == nil }.sorted()
                for column in extra {
                    found.append(Violation(check: "no-phantoms", message: "\(rowLabel): the server holds column \(column), which no acknowledged write set", rows: rows))
                }
            }
        }
        return found
    }

    private func describe(_ row: StoredRow?) -> String {
        guard let row else { return "nothing" }
        if let tombstone = row.tombstone { return "a \(tombstone.erased ? "erase" : "delete") tombstone at \(tombstone.version)" + (row.cells.isEmpty ? "" : " and \(row.cells.count) cells") }
        return "a live row"
    }

    /// Every pair of concurrent writes the simulator saw (different authors, neither had seen the other's
    /// version, different values) left a conflict record naming the higher version as the winner; and
    /// every recorded conflict's winner is the higher version (or the row's tombstone).
    func checkConflicts(_ knowledge: Knowledge, server: ServerSnapshot, labels: Labels) -> [Violation] {
        var found: [Violation] = []
        // One record per cell and losing version (its id derives from them, SPEC 4.5): a losing version
        // that reaches the server again (re-sent after a restore or under a new replica id) leaves the
        // record as it was, so the first expectation for it is the one to check.
        struct Loss: Hashable { var cell: CellKey; var loser: Version }
        var judged: Set<Loss> = []
        for expected in knowledge.expectedConflicts where judged.insert(Loss(cell: expected.cell, loser: expected.loser)).inserted {
            let key = RowKey(expected.cell.table, expected.cell.row)
            if server.isErased(enquiryOf: key, noteEnquiries: labels.noteEnquiry) { continue }
            let cell = "\(labels.label(expected.cell.row)).\(expected.cell.columnName)"
            let rows = [labels.enquiryLabel(of: expected.cell.row)]
            let matching = server.conflicts.filter {
                $0.table == expected.cell.table.name && $0.row == expected.cell.row && $0.column == expected.cell.columnName && $0.loser == expected.loser
            }
            guard let record = matching.first else {
                found.append(Violation(
                    check: "conflict-recorded",
                    message: "concurrent writes to \(cell) at step \(expected.step): \(expected.loser) lost to \(expected.rowDeleted ? "the row's delete at " : "")\(expected.winner), but no conflict was recorded",
                    rows: rows))
                continue
            }
            if record.winner != expected.winner {
                found.append(Violation(
                    check: "conflict-recorded",
                    message: "the conflict on \(cell) names \(record.winner) as the winner; the merge rule makes it \(expected.winner)", rows: rows))
            }
        }
        for record in server.conflicts {
            guard let table = TableID(name: record.table) else { continue }
            let tombstone = server.rows[RowKey(table, record.row)]?.tombstone
            if record.winnerValue == .null, let tombstone, tombstone.version >= record.winner { continue }
            if record.winner < record.loser {
                found.append(Violation(
                    check: "conflict-recorded",
                    message: "the conflict on \(labels.label(record.row)).\(record.column) names the lower version \(record.winner) as the winner over \(record.loser)",
                    rows: [labels.enquiryLabel(of: record.row)]))
            }
        }
        return found
    }

    /// Each device holds only its scope, and only whole rows.
    func checkScopeAndShape(server: ServerSnapshot, labels: Labels) throws -> [Violation] {
        var found: [Violation] = []
        for device in devices {
            let (enquiries, notes, conflicts, content) = try device.replica.writer.read { db in
                (try Row.fetchAll(db, sql: "SELECT id, branch, name, created_at, status FROM enquiry ORDER BY id"),
                 try Row.fetchAll(db, sql: "SELECT id, enquiry, body, created_at FROM enquiry_note ORDER BY id"),
                 try Row.fetchAll(db, sql: "SELECT id, row_id, branch FROM sync_conflict ORDER BY id"),
                 try Row.fetchAll(db, sql: "SELECT id, branch FROM content ORDER BY id"))
            }
            for row in enquiries {
                let id: String = row["id"]
                let label = labels.label(id)
                if (row["branch"] as String?) != device.branch {
                    found.append(Violation(check: "scope", message: "\(device.name) (\(device.branch)) holds \(label) of branch \((row["branch"] as String?) ?? "null")", rows: [label]))
                }
                if (row["name"] as String?) == nil || (row["created_at"] as String?) == nil || (row["status"] as String?) == nil {
                    found.append(Violation(check: "whole-rows", message: "\(device.name) holds a partial row for \(label) (name, created_at or status missing)", rows: [label]))
                }
            }
            for row in notes {
                let id: String = row["id"]
                let scope = server.rows[RowKey(.enquiryNote, id)]?.scope
                if scope != device.branch {
                    found.append(Violation(check: "scope", message: "\(device.name) (\(device.branch)) holds note \(labels.label(id)), which the server scopes to \(scope ?? "nothing")",
                                           rows: [labels.enquiryLabel(of: id)]))
                }
                if (row["enquiry"] as String?) == nil || (row["body"] as String?) == nil {
                    found.append(Violation(check: "whole-rows", message: "\(device.name) holds a partial note \(labels.label(id))", rows: [labels.enquiryLabel(of: id)]))
                }
            }
            for row in conflicts {
                let branch: String? = row["branch"]
                if let branch, !branch.isEmpty, branch != device.branch {
                    found.append(Violation(check: "scope", message: "\(device.name) (\(device.branch)) holds a conflict of branch \(branch)",
                                           rows: [labels.enquiryLabel(of: row["row_id"] ?? "")]))
                }
            }
            for row in content {
                if let branch = row["branch"] as String?, branch != device.branch {
                    found.append(Violation(check: "scope", message: "\(device.name) (\(device.branch)) holds content \(row["id"] as String) of branch \(branch)"))
                }
            }
        }
        return found
    }

    /// Devices of one branch hold identical app tables, and those are exactly the server's rows in that branch's scope.
    func checkConvergence(labels: Labels) throws -> [Violation] {
        var found: [Violation] = []
        var dumps: [String: [String: String]] = [:]
        for device in devices {
            dumps[device.name] = try device.replica.writer.read { db in try Self.dump(db) }
        }
        for branch in Self.branches {
            let members = devices.filter { $0.branch == branch }
            for (first, second) in zip(members, members.dropFirst()) {
                found += diff(dumps[first.name]!, dumps[second.name]!, leftName: first.name, rightName: second.name, labels: labels, check: "convergence")
            }
            let projection = try serverDatabase().read { db in try Self.dump(db, scope: branch) }
            for device in members {
                found += diff(dumps[device.name]!, projection, leftName: device.name, rightName: "the server (\(branch) scope)", labels: labels, check: "convergence")
            }
        }
        return found
    }

    private func diff(_ left: [String: String], _ right: [String: String], leftName: String, rightName: String, labels: Labels, check: String) -> [Violation] {
        var found: [Violation] = []
        for key in Set(left.keys).union(right.keys).sorted() where left[key] != right[key] {
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            let what = "\(parts[0]) \(labels.label(parts[1]))"
            let rows = parts[0] == "branch" || parts[0] == "content" ? [] : [labels.enquiryLabel(of: parts[1])]
            switch (left[key], right[key]) {
            case (nil, _): found.append(Violation(check: check, message: "\(rightName) holds \(what); \(leftName) does not", rows: rows))
            case (_, nil): found.append(Violation(check: check, message: "\(leftName) holds \(what); \(rightName) does not", rows: rows))
            case (let l?, let r?): found.append(Violation(check: check, message: "\(what) differs: \(leftName) has {\(l)}, \(rightName) has {\(r)}", rows: rows))
            }
            if found.count >= 6 { break }
        }
        return found
    }

    /// Jepsen-style set check on notes: every note the server acknowledged is on the server and on every
    /// device of its enquiry's branch, unless that enquiry was erased.
    func checkNotes(_ knowledge: Knowledge, server: ServerSnapshot, labels: Labels) throws -> [Violation] {
        var found: [Violation] = []
        var held: [String: Set<String>] = [:]
        for device in devices {
            held[device.name] = Set(try device.replica.writer.read { db in try String.fetchAll(db, sql: "SELECT id FROM enquiry_note") })
        }
        let lost = knowledge.accepted.filter { knowledge.writes[$0] == nil }
        if let first = lost.first {
            // The simulator's own bookkeeping, not the code under test: report it rather than crash the soak.
            found.append(Violation(check: "simulator", message: "\(lost.count) stored writes lost their records (first \(first))"))
        }
        let acknowledged = Set(knowledge.accepted.compactMap { key -> String? in
            guard let write = knowledge.writes[key] else { return nil }
            return write.change.table == .enquiryNote ? write.change.row : nil
        }).sorted()
        for note in acknowledged {
            let key = RowKey(.enquiryNote, note)
            let rows = [labels.enquiryLabel(of: note)]
            if server.isErased(enquiryOf: key, noteEnquiries: labels.noteEnquiry) { continue }
            guard let stored = server.rows[key], stored.tombstone == nil else {
                found.append(Violation(check: "notes", message: "note \(labels.label(note)) was acknowledged but the server does not hold it", rows: rows))
                continue
            }
            for device in devices where device.branch == stored.scope && !(held[device.name]!.contains(note)) {
                found.append(Violation(check: "notes", message: "note \(labels.label(note)) was acknowledged but \(device.name) (\(device.branch)) does not hold it", rows: rows))
            }
        }
        return found
    }

    /// Invariant 9: the text of an erased enquiry and of its notes is in no database or WAL file.
    func checkErasedText(server: ServerSnapshot, labels: Labels) throws -> [Violation] {
        let erased = server.rows.filter { $0.key.table == .enquiry && $0.value.tombstone?.erased == true }.map(\.key.row).sorted()
        guard !erased.isEmpty else { return [] }
        var markers: [(String, String)] = []
        for id in erased {
            let label = labels.label(id)
            markers.append((label, "Patient \(label)."))
            markers.append((label, "Message about \(label)."))
            for (note, enquiry) in labels.noteEnquiry where enquiry == id {
                markers.append((label, "Note \(labels.label(note)) on \(label)."))
            }
        }
        markers.sort { $0.1 < $1.1 }
        var found: [Violation] = []
        let files = try FileManager.default.subpathsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sqlite") || $0.hasSuffix(".sqlite-wal") }.sorted()
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file))
            for (label, marker) in markers where data.range(of: Data(marker.utf8)) != nil {
                found.append(Violation(check: "erasure", message: "\"\(marker)\" of erased \(label) survives in \(file)", rows: [label]))
            }
        }
        return found
    }
}
