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
    /// `package` so the simulator can read the file's sync metadata (outbox, clock) for its checks.
    package let writer: any DatabaseWriter
    let wall: any WallClock
    /// `package` so the simulator can switch on the merge rule's test-only fault.
    package var applier = ChangeApplier(keepsValues: false, reSequencesDuplicates: true)

    /// Opens the replica at `path`, creating it (mode 0600, missing folders 0700) and migrating it as needed.
    ///
    /// With `creating: false` a missing file is an error (``ReplicaError/Code/noReplica``), so that a
    /// mistyped path is refused rather than answered from a new, empty replica.
    public static func open(at path: String, creating: Bool = true, clock: any WallClock = SystemWallClock()) throws -> Replica {
        if !FileManager.default.fileExists(atPath: path) {
            guard creating else { throw ReplicaError.noReplica(at: path) }
            try PrivateFiles.createDirectory((path as NSString).deletingLastPathComponent)
            try PrivateFiles.createFile(path)
        }
        let writer: any DatabaseWriter
        do {
            writer = try DatabasePool(path: path, configuration: StorageConfiguration.make())
        } catch where StorageConfiguration.isOpenFailureOfFullDisk(error) {
            // Most likely no room for the `-shm` file (issue 14 item 11): alone on the file, SQLite keeps
            // that index in memory instead, so reads work and writes fail with "disk is full".
            writer = try DatabaseQueue(path: path, configuration: StorageConfiguration.make(exclusive: true))
        }
        do {
            try ReplicaSchema.migrator.migrate(writer)
        } catch where StorageConfiguration.isStorageFull(error) {
            throw ReplicaError.storageFull(at: path)
        }
        StorageConfiguration.finishPendingScrub(writer)
        return Replica(path: path, writer: writer, wall: clock)
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

    /// Points this enrolled replica at its server's new address, keeping everything it holds: the
    /// token, the outbox, the cursor. For a server that moved, not for another server's store.
    ///
    /// - Parameter trust: replaces the certificates trusted (a new CA, a renewed pin); nil keeps them.
    /// - Throws: ``SyncError`` (`insecure_http`, `invalid_server_settings`) for a URL and trust that
    ///   `sync` would refuse; nothing is changed then.
    public func repoint(server: String, trust: ServerTrust? = nil) throws {
        try writer.write { db in
            guard try Self.identity(db) != nil else { throw ReplicaError.notEnrolled }
            let trust = try trust ?? Self.serverTrust(db)
            try trust.validate(server: server)
            try SyncMeta.set(MetaKey.server, server, in: db)
            try Self.setServerTrust(trust, in: db)
        }
    }

    /// Sets this replica's identity without a server: for benchmarks and the simulator's fixtures.
    package func assumeIdentity(_ identity: ReplicaIdentity, token: String) throws {
        try writer.write { db in
            try SyncMeta.set(MetaKey.replica, identity.replica.databaseValue, in: db)
            try SyncMeta.set(MetaKey.branch, identity.branch, in: db)
            try SyncMeta.set(MetaKey.role, identity.role.name, in: db)
            try SyncMeta.set(MetaKey.server, identity.server, in: db)
            try SyncMeta.set(MetaKey.token, token, in: db)
        }
    }

    /// Counts for `status`.
    public func status() throws -> ReplicaStatus {
        try writer.read { db in
            let daemon = (try SyncMeta.get(MetaKey.daemonPID, in: db) as Int64?).flatMap { Int32(exactly: $0) }
            return ReplicaStatus(
                path: path,
                identity: try Self.identity(db),
                lastSyncAt: try SyncMeta.get(MetaKey.lastSyncAt, in: db),
                lastAttemptAt: try SyncMeta.get(MetaKey.lastAttemptAt, in: db),
                lastFailureAt: try SyncMeta.get(MetaKey.lastFailureAt, in: db),
                lastFailure: try SyncMeta.get(MetaKey.lastFailure, in: db),
                daemonPID: daemon,
                daemonSeenAt: try SyncMeta.get(MetaKey.daemonSeenAt, in: db),
                // Signal 0 only asks whether the process exists (EPERM: it does, under another user).
                daemonRunning: daemon.map { kill($0, 0) == 0 || errno == EPERM } ?? false,
                cursor: UInt64(try SyncMeta.get(MetaKey.cursor, in: db) as Int64? ?? 0),
                pendingChanges: try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_outbox") ?? 0,
                pendingRows: try Int.fetchOne(db, sql: "SELECT count(*) FROM (SELECT DISTINCT tbl, row FROM sync_outbox)") ?? 0,
                openConflicts: try Conflicts.fetch(db, replica: self, includeResolved: false).count,
                deadLetters: try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_dead_letter") ?? 0,
                enquiries: try Int.fetchOne(db, sql: "SELECT count(*) FROM enquiry") ?? 0,
                contentItems: try Int.fetchOne(db, sql: "SELECT count(*) FROM content") ?? 0)
        }
    }

    /// An erasure committed, but a reader holding the file (a backup, a report) kept its text in the
    /// WAL; the next sync, write or open finishes the scrub once the reader lets go (SPEC 7.6).
    public var isWALScrubPending: Bool { StorageConfiguration.isScrubPending(writer) }

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

    /// Deletes a row (a tombstone, not an erasure). The simulator's delete-versus-edit scenarios use it.
    package func delete(_ table: TableID, _ row: String) throws {
        try commit([.delete(table, row, erase: false)])
    }

    /// One local write: cells of one or more rows, or a row delete/erase, under one clock reading.
    enum LocalEdit {
        case write(TableID, String, [(ColumnID, Value)])
        case delete(TableID, String, erase: Bool)
    }

    /// Applies local edits in one transaction: app rows, cell versions and outbox entries together.
    func commit(_ edits: [LocalEdit]) throws {
        do {
            try commitUnmapped(edits)
        } catch where StorageConfiguration.isStorageFull(error) {
            throw ReplicaError.storageFull(at: path)
        }
    }

    private func commitUnmapped(_ edits: [LocalEdit]) throws {
        var erased = false
        try writer.write { db in
            guard let identity = try Self.identity(db) else { throw ReplicaError.notEnrolled }
            var clock = HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0))
            let version = Version(hlc: clock.tick(wall: wall.milliseconds()), replica: identity.replica)
            for edit in edits {
                switch edit {
                case .write(let table, let row, let cells):
                    if let problem = Schema.problem(rowID: row) { throw ReplicaError(.invalidValue, problem) }
                    for (column, value) in cells {
                        if let problem = table.definition.problem(writing: value, to: column) {
                            throw ReplicaError(.invalidValue, problem)
                        }
                    }
                    var changes = cells.map { column, value in
                        Change(table: table, row: row, operation: .write(column: column, value: value, baseSeq: 0), version: version)
                    }
                    let outcomes = try applier.apply(changes.map { SequencedChange($0) }, in: db)
                    // baseSeq is the seq of the version this write replaced: what its author had seen.
                    for (index, outcome) in outcomes.enumerated() {
                        switch outcome {
                        case .applied(let previous):
                            changes[index].operation = .write(column: cells[index].0, value: cells[index].1, baseSeq: UInt64(previous?.seq ?? 0))
                        case .rowDeleted:
                            throw ReplicaError(.rowDeleted, "\(table.name) \(row) was deleted")
                        case .keptCurrent, .duplicate, .deleted:
                            // A fresh clock reading beats every stored version; nothing else can happen here.
                            break
                        }
                    }
                    try Outbox.append(changes, in: db)
                case .delete(let table, let row, let erase):
                    // An erasure of a row never held here would report success and leave a dead letter behind.
                    if erase, try !Self.holdsTrace(of: RowKey(table, row), in: db) {
                        throw ReplicaError(.notFound, "no \(table.name) \(row) on this terminal; nothing was erased")
                    }
                    let change = Change(table: table, row: row, operation: erase ? .erase : .delete, version: version)
                    try applyDeletion(change, in: db)
                    try Outbox.append(change, in: db)
                    erased = erased || erase
                }
            }
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
        }
        if erased { StorageConfiguration.checkpointTruncating(writer) }
    }

    /// Whether this file holds anything of the row: the row itself, a version or tombstone, or an unsent change.
    static func holdsTrace(of key: RowKey, in db: Database) throws -> Bool {
        let table = Int64(key.table.rawValue)
        return try Bool.fetchOne(db, sql: """
            SELECT EXISTS (SELECT 1 FROM \(key.table.name) WHERE id = ?) OR EXISTS (SELECT 1 FROM sync_cell WHERE tbl = ? AND row = ?)
                OR EXISTS (SELECT 1 FROM sync_outbox WHERE tbl = ? AND row = ?)
            """, arguments: [key.row, table, key.row, table, key.row]) ?? false
    }

    /// Re-issues the versions of unsent changes stamped while this terminal's wall clock ran ahead.
    ///
    /// The server refuses a push holding any version more than its drift bound ahead of its clock
    /// (invariant 2, `clock_drift`). A terminal whose clock ran a year ahead stamped its writes a
    /// year ahead, and its clock's high-water mark with them; fixing the wall clock alone would leave
    /// them refused for a year. Once the clock is back (the high-water mark is more than `maxDrift`
    /// ahead of both the wall clock and every version received from others), the first pending change
    /// beyond that bound and every later one get new readings, in order, above every version this
    /// replica keeps; the high-water mark comes down with them. Those readings never left this file
    /// (the server refused every request carrying them), so nothing anyone else holds moves backwards.
    /// Returns false when there is nothing to re-issue (or the wall clock still runs ahead).
    func reissueVersionsAhead(maxDrift: UInt64) throws -> Bool {
        try writer.write { db in
            guard let identity = try Self.identity(db) else { return false }
            let me = identity.replica.databaseValue
            // Versions from others, and the server's clock readings, approximate true time from below,
            // should the fixed wall clock run behind.
            let heard = try SyncMeta.get(MetaKey.serverHLC, in: db) as Int64? ?? 0
            let received = HLC(databaseValue: max(heard, try Int64.fetchOne(db, sql: "SELECT max(hlc) FROM sync_cell WHERE replica != ?", arguments: [me]) ?? 0))
            let reference = max(self.wall.milliseconds(), received.milliseconds)
            let bound = HLC(milliseconds: min(reference + maxDrift, HLC.maxMilliseconds), counter: UInt16.max).databaseValue
            let last = HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0)
            guard last.databaseValue > bound else { return false }
            let wall = self.wall.milliseconds()
            let first = try Int64.fetchOne(db, sql: "SELECT min(counter) FROM sync_outbox WHERE hlc > ?", arguments: [bound]) ?? Int64.max
            let ahead = try Row.fetchAll(db, sql: "SELECT counter, tbl, row, col, hlc FROM sync_outbox WHERE counter >= ? ORDER BY counter", arguments: [first])
            // Kept: every version except the pending ones re-issued here and the local tombstones an erasure
            // cascaded from them (the server makes its own). That includes this replica's versions the server
            // has stored: a re-issued change must still come after them.
            // A reading the server sent was received, not issued here: the clock never goes below it (invariant 2).
            let kept = max(
                heard,
                try Int64.fetchOne(db, sql: """
                    SELECT max(c.hlc) FROM sync_cell c WHERE NOT (c.replica = ? AND c.hlc > ? AND (c.col = 0 OR EXISTS (
                        SELECT 1 FROM sync_outbox o WHERE o.counter >= ? AND o.tbl = c.tbl AND o.row = c.row AND o.col = c.col AND o.hlc = c.hlc)))
                    """, arguments: [me, bound, first]) ?? 0,
                try Int64.fetchOne(db, sql: "SELECT max(hlc) FROM sync_outbox WHERE counter < ?", arguments: [first]) ?? 0)
            var clock = HybridLogicalClock(last: HLC(databaseValue: kept))
            var reissued: [Int64: HLC] = [:]
            for entry in ahead {
                let old: Int64 = entry["hlc"]
                let new = reissued[old] ?? clock.tick(wall: wall)
                reissued[old] = new
                try db.execute(sql: "UPDATE sync_outbox SET hlc = ? WHERE counter = ?", arguments: [new.databaseValue, entry["counter"] as Int64])
                try db.execute(sql: "UPDATE sync_cell SET hlc = ? WHERE tbl = ? AND row = ? AND col = ? AND hlc = ? AND replica = ?",
                               arguments: [new.databaseValue, entry["tbl"] as Int64, entry["row"] as String, entry["col"] as Int64, old, me])
            }
            try db.execute(sql: "UPDATE sync_cell SET hlc = ? WHERE replica = ? AND col = 0 AND hlc > ?", arguments: [clock.last.databaseValue, me, bound])
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
            return true
        }
    }

    /// Moves outbox entries the server will never accept to the dead letters, with `reason`, in one
    /// transaction; rows the server never stored leave the app tables as they would on a rejection.
    func deadLetter(_ changes: [PushedChange], reason: String) throws {
        try writer.write { db in
            let now = Timestamp.iso8601(milliseconds: wall.milliseconds())
            for pushed in changes {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO sync_dead_letter (counter, tbl, row, col, value, hlc, reason, rejected_at)
                    SELECT counter, tbl, row, col, value, hlc, ?, ? FROM sync_outbox WHERE counter = ?
                    """, arguments: [reason, now, Int64(pushed.counter)])
                try db.execute(sql: "DELETE FROM sync_outbox WHERE counter = ?", arguments: [Int64(pushed.counter)])
            }
            try purgeRowsNeverStored(changes.map { RowKey($0.change.table, $0.change.row) }, in: db)
        }
    }

    /// A row the server never stored, all of whose changes it refused (a note on an enquiry deleted
    /// meanwhile), leaves the app tables: replicas converge, and the dead letter keeps what was refused.
    func purgeRowsNeverStored(_ refused: [RowKey], in db: Database) throws {
        for key in Set(refused).sorted() {
            let stored = try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM sync_cell WHERE tbl = ? AND row = ? AND seq > 0)
                    OR EXISTS (SELECT 1 FROM sync_outbox WHERE tbl = ? AND row = ?)
                """, arguments: [Int64(key.table.rawValue), key.row, Int64(key.table.rawValue), key.row]) ?? true
            if !stored { try purge(key, in: db, keepingDeadLetters: true) }
        }
    }

    /// Carries on under `next` after the server found this file restored from an older copy of itself
    /// (SPEC 7.8). The versions of pending changes keep their clock readings and take the new replica
    /// id, which the server chose next to the old one, so their order against every other replica's
    /// versions is unchanged; they can no longer collide with what the lost copy pushed under the old
    /// id. Nothing pending is dropped. A no-op when another process on this file already did it.
    func carryOn(as next: ReplicaID, replacing old: ReplicaID, serverClock: HLC) throws {
        try writer.write { db in
            guard let identity = try Self.identity(db), identity.replica == old else { return }
            try Self.restampPending(from: old, to: next, in: db)
            try SyncMeta.set(MetaKey.replica, next.databaseValue, in: db)
            try SyncMeta.set(MetaKey.acknowledged, 0, in: db)
            var clock = HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0))
            try? clock.receive(serverClock, wall: wall.milliseconds())
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
            try Self.noteServerClock(serverClock, in: db)
        }
    }

    /// Keeps the highest clock reading the server has sent apart from the high-water mark, which a
    /// re-issue after a clock fix may bring down (SPEC 7.7), but only below readings issued here.
    static func noteServerClock(_ reading: HLC, in db: Database) throws {
        let heard = HLC(databaseValue: try SyncMeta.get(MetaKey.serverHLC, in: db) ?? 0)
        if reading > heard { try SyncMeta.set(MetaKey.serverHLC, reading.databaseValue, in: db) }
    }

    /// The versions of pending (unacknowledged) changes take replica id `next`, keeping their clock
    /// readings: for carrying on after a restore (SPEC 7.8) and for re-enrolling (a new device, a new id).
    static func restampPending(from old: ReplicaID, to next: ReplicaID, in db: Database) throws {
        try db.execute(sql: """
            UPDATE sync_cell SET replica = :next WHERE replica = :old AND EXISTS (
                SELECT 1 FROM sync_outbox o WHERE o.tbl = sync_cell.tbl AND o.row = sync_cell.row AND o.col = sync_cell.col AND o.hlc = sync_cell.hlc)
            """, arguments: ["next": next.databaseValue, "old": old.databaseValue])
        // Tombstones an erasure cascaded to the row's notes carry the erasure's version.
        try db.execute(sql: """
            UPDATE sync_cell SET replica = :next WHERE replica = :old AND col = 0 AND hlc IN (SELECT hlc FROM sync_outbox WHERE col = 0)
            """, arguments: ["next": next.databaseValue, "old": old.databaseValue])
    }

    /// The server store's epoch as this file last saw it.
    func storeEpoch() throws -> String? {
        try writer.read { db in try SyncMeta.get(MetaKey.storeEpoch, in: db) }
    }

    /// The server's store was restored from an older copy (SPEC 7.9). In one transaction: every
    /// version this replica authored that is no longer pending goes back into the outbox (the restored
    /// store may have lost it; re-sending what it kept changes nothing), the cursor goes back to 0 so
    /// everything is read again, and the new epoch is recorded. Returns how many changes were re-queued.
    func resupplyAfterStoreRestore(epoch: String, serverClock: HLC) throws -> Int {
        try writer.write { db in
            guard let identity = try Self.identity(db) else { return 0 }
            let pendingBefore = try Int64.fetchOne(db, sql: "SELECT max(counter) FROM sync_outbox") ?? 0
            // Conflict records are the server's: those it lost are gone (the pull from 0 brings back the
            // others), and a resolution of one it lost has nothing to resolve.
            try db.execute(sql: """
                DELETE FROM sync_conflict WHERE id NOT IN (SELECT row FROM sync_outbox WHERE tbl = :conflict);
                DELETE FROM sync_cell WHERE tbl = :conflict AND row NOT IN (SELECT row FROM sync_outbox WHERE tbl = :conflict)
                """, arguments: ["conflict": Int64(TableID.conflict.rawValue)])
            let rows = try Row.fetchAll(db, sql: """
                SELECT tbl, row, col, value, hlc FROM sync_cell c WHERE replica = ? AND NOT EXISTS (
                    SELECT 1 FROM sync_outbox o WHERE o.tbl = c.tbl AND o.row = c.row AND o.col = c.col AND o.hlc = c.hlc)
                ORDER BY hlc, tbl, row, col
                """, arguments: [identity.replica.databaseValue])
            var count = 0
            for row in rows {
                guard let table = TableID(rawValue: UInt8(truncatingIfNeeded: row["tbl"] as Int64)) else { continue }
                let id: String = row["row"]
                let operation: Change.Operation
                if let column = table.definition.column(ColumnID(UInt8(truncatingIfNeeded: row["col"] as Int64))) {
                    let stored = try DatabaseValue.fetchOne(db, sql: "SELECT \(column.name) FROM \(table.name) WHERE id = ?", arguments: [id])
                    // The largest base seq says "its author had seen everything": history is re-sent, not re-judged.
                    operation = .write(column: column.id, value: stored.flatMap(Value.fromDatabaseValue) ?? .null, baseSeq: UInt64(Int64.max))
                } else if (row["col"] as Int64) == 0 {
                    operation = (row["value"] as Int64?) == 2 ? .erase : .delete
                } else {
                    continue
                }
                try Outbox.append(Change(table: table, row: id, operation: operation,
                                         version: Version(hlc: HLC(databaseValue: row["hlc"]), replica: identity.replica)), in: db)
                count += 1
            }
            // What was pending goes after what is re-sent, under new counters: an edit must not reach
            // the restored store before the row it edits (it would be refused as a row of no branch),
            // and counters the restored store may already have answered (the request that brought the
            // news was processed) would be taken for replays of those answers. Their base seqs number
            // the lost store's history: 0 says "saw nothing", so a concurrent write is recorded as a
            // conflict rather than silently overwritten.
            try db.execute(sql: """
                INSERT INTO sync_outbox (tbl, row, col, value, hlc, base_seq)
                SELECT tbl, row, col, value, hlc, CASE WHEN col > 0 THEN 0 ELSE base_seq END FROM sync_outbox WHERE counter <= ? ORDER BY counter
                """, arguments: [pendingBefore])
            try db.execute(sql: "DELETE FROM sync_outbox WHERE counter <= ?", arguments: [pendingBefore])
            // The seqs held number the lost store's history; a later edit's base seq would claim to have
            // seen what the restored store numbers differently. 0 ("seen nothing") until pulled again.
            try db.execute(sql: "UPDATE sync_cell SET seq = 0")
            try SyncMeta.set(MetaKey.cursor, 0, in: db)
            try SyncMeta.set(MetaKey.acknowledged, 0, in: db)
            try SyncMeta.set(MetaKey.storeEpoch, epoch, in: db)
            // The answer is not applied, but its clock reading was received (invariant 2).
            var clock = HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0))
            try? clock.receive(serverClock, wall: wall.milliseconds())
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
            try Self.noteServerClock(serverClock, in: db)
            return count
        }
    }

    /// Applies a delete or erase and, for an erase, everything erased with it; unsent edits of erased
    /// rows are dropped from the outbox, since their values must not leave this file.
    func applyDeletion(_ change: Change, seq: Int64? = nil, in db: Database) throws {
        let outcomes = try applier.apply([SequencedChange(change, seq: seq)], in: db)
        if case .deleted(_, let cascade) = outcomes.first {
            for key in [RowKey(change.table, change.row)] + cascade { try UnknownCells.remove(key, in: db) }
        }
        guard case .deleted(let tombstone, let cascade) = outcomes.first, tombstone.erased else { return }
        var traces: [RowKey] = []
        if change.table == .enquiry {
            // Notes of it no longer in the app tables (refused, then cleared) can linger in the outbox and dead letters.
            traces = try String.fetchAll(db, sql: """
                SELECT row FROM sync_dead_letter WHERE tbl = ? AND col = ? AND value = ? UNION SELECT row FROM sync_outbox WHERE tbl = ? AND col = ? AND value = ?
                """, arguments: [Int64(TableID.enquiryNote.rawValue), Int64(Columns.Note.enquiry.rawValue), change.row,
                                  Int64(TableID.enquiryNote.rawValue), Int64(Columns.Note.enquiry.rawValue), change.row]).map { RowKey(.enquiryNote, $0) }
        }
        for key in [RowKey(change.table, change.row)] + cascade + traces {
            try db.execute(sql: "DELETE FROM sync_outbox WHERE tbl = ? AND row = ? AND col > 0", arguments: [Int64(key.table.rawValue), key.row])
            try db.execute(sql: "DELETE FROM sync_dead_letter WHERE tbl = ? AND row = ?", arguments: [Int64(key.table.rawValue), key.row])
        }
        for key in cascade {
            _ = try applier.apply([SequencedChange(Change(table: key.table, row: key.row, operation: .erase, version: tombstone.version))], in: db)
        }
    }

    /// Asks for a new device token at the next sync (SPEC 8.2); the current one works until then.
    public func requestTokenRotation() throws {
        try writer.write { db in try SyncMeta.set(MetaKey.rotateToken, Int64(1), in: db) }
    }

    /// The device now belongs to `branch` (SPEC 8.6): every enquiry (with its notes and conflicts)
    /// leaves this file, dead letters keep no values, the cursor goes back to 0 so the next pull reads
    /// the new branch whole; then the WAL is truncated so no old text stays in any file (invariant 9).
    /// Returns how many enquiries were removed.
    public func move(to branch: String) throws -> Int {
        let purged = try writer.write { db -> Int in
            let enquiries = try Set(String.fetchAll(db, sql: "SELECT id FROM enquiry")
                + String.fetchAll(db, sql: "SELECT DISTINCT row FROM sync_cell WHERE tbl = ?", arguments: [Int64(TableID.enquiry.rawValue)]))
            for id in enquiries.sorted() { try purge(RowKey(.enquiry, id), in: db) }
            // Notes of enquiries this file never held, and dead letters of any of them: no text survives the move.
            for id in try String.fetchAll(db, sql: "SELECT id FROM enquiry_note") { try purge(RowKey(.enquiryNote, id), in: db) }
            try db.execute(sql: "UPDATE sync_dead_letter SET value = NULL WHERE tbl IN (?, ?)",
                           arguments: [Int64(TableID.enquiry.rawValue), Int64(TableID.enquiryNote.rawValue)])
            try SyncMeta.set(MetaKey.branch, branch, in: db)
            try SyncMeta.set(MetaKey.cursor, Int64(0), in: db)
            return enquiries.count
        }
        StorageConfiguration.checkpointTruncating(writer)
        return purged
    }

    /// Removes a row that left this terminal's scope, without a tombstone: it lives on elsewhere. An
    /// enquiry takes its notes and the conflicts on them with it (SPEC 7.4), including notes written
    /// here that the server never stored. Dead letters of these rows lose their values (patient text
    /// of another branch's, or an erased, enquiry) unless `keepingDeadLetters`.
    func purge(_ key: RowKey, in db: Database, keepingDeadLetters: Bool = false) throws {
        var keys = [key]
        if key.table == .enquiry {
            keys += try String.fetchAll(db, sql: "SELECT id FROM enquiry_note WHERE enquiry = ?", arguments: [key.row]).map { RowKey(.enquiryNote, $0) }
            if !keepingDeadLetters {
                keys += try String.fetchAll(db, sql: "SELECT DISTINCT row FROM sync_dead_letter WHERE tbl = ? AND col = ? AND value = ?",
                                            arguments: [Int64(TableID.enquiryNote.rawValue), Int64(Columns.Note.enquiry.rawValue), key.row])
                    .map { RowKey(.enquiryNote, $0) }
            }
            let rows = keys.map(\.row)
            keys += try String.fetchAll(db, sql: "SELECT id FROM sync_conflict WHERE row_id IN (\(rows.map { _ in "?" }.joined(separator: ", ")))",
                                        arguments: StatementArguments(rows)).map { RowKey(.conflict, $0) }
        }
        for key in keys {
            try db.execute(sql: "DELETE FROM \(key.table.name) WHERE id = ?", arguments: [key.row])
            try db.execute(sql: "DELETE FROM sync_cell WHERE tbl = ? AND row = ?", arguments: [Int64(key.table.rawValue), key.row])
            try UnknownCells.remove(key, in: db)
            if !keepingDeadLetters {
                try db.execute(sql: "UPDATE sync_dead_letter SET value = NULL WHERE tbl = ? AND row = ?", arguments: [Int64(key.table.rawValue), key.row])
            }
        }
    }
}

enum Outbox {
    /// Appends changes in one statement.
    static func append(_ changes: [Change], in db: Database) throws {
        guard changes.count > 1 else {
            if let change = changes.first { try append(change, in: db) }
            return
        }
        var arguments = StatementArguments()
        for change in changes {
            guard case .write(let column, let value, let baseSeq) = change.operation else {
                preconditionFailure("only writes are appended in batches")
            }
            arguments += [Int64(change.table.rawValue), change.row, Int64(column.rawValue), value, change.version.hlc.databaseValue, Int64(baseSeq)]
        }
        try db.cachedStatement(sql: "INSERT INTO sync_outbox (tbl, row, col, value, hlc, base_seq) VALUES "
                               + Array(repeating: "(?, ?, ?, ?, ?, ?)", count: changes.count).joined(separator: ", "))
            .execute(arguments: arguments)
    }

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

    /// The oldest `limit` entries, as the changes to push; more when the limit would split the cells one
    /// local write gave one row (SPEC 7.5: a new row's cells travel in one request, or a move between
    /// two requests would strand its other cells out of scope and leave a partial row everywhere).
    static func batch(limit: Int, replica: ReplicaID, in db: Database) throws -> [PushedChange] {
        var rows = try Row.fetchAll(db, sql: "SELECT * FROM sync_outbox ORDER BY counter LIMIT ?", arguments: [limit])
        if rows.count == limit, let last = rows.last {
            rows += try Row.fetchAll(db, sql: "SELECT * FROM sync_outbox WHERE counter > ? AND hlc = ? AND tbl = ? AND row = ? ORDER BY counter",
                                     arguments: [last["counter"] as Int64, last["hlc"] as Int64, last["tbl"] as Int64, last["row"] as String])
        }
        return rows.compactMap { row in
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
