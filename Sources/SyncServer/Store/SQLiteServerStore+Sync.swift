import Foundation
import GRDB
import SyncCore
import SyncStorage

extension SQLiteServerStore {
    public func sync(_ request: SyncRequest, from authenticated: Device, limits: SyncLimits, evidence: SyncEvidence) async throws -> SyncOutcome {
        try await guarded { try await sync(request, authenticated: authenticated, limits: limits, evidence: evidence) }
    }

    private func sync(_ request: SyncRequest, authenticated: Device, limits: SyncLimits, evidence: SyncEvidence) async throws -> SyncOutcome {
        // Invariant 10: a terminal that knows more than this store did is proof the store went back.
        let lastSeq = try await writer.read { db in UInt64(try SyncMeta.get("last_seq", in: db) as Int64? ?? 0) }
        var (restored, device) = (false, authenticated)
        if request.cursor > lastSeq || (evidence.acknowledged ?? 0) > authenticated.acknowledged
            || (request.replica != authenticated.replica && (evidence.acknowledged ?? 0) > 0) {
            // Rare: look closer, and write only then, so that a pull stays a read.
            (restored, device) = try await writer.write { db -> (Bool, Device) in
                var device = authenticated
                return (try detectRestore(request, device: &device, evidence: evidence, db: db), device)
            }
        }
        return try await sync(request, from: device, limits: limits, evidence: evidence, restored: restored)
    }

    private func sync(_ request: SyncRequest, from device: Device, limits: SyncLimits, evidence: SyncEvidence, restored: Bool) async throws -> SyncOutcome {
        guard let replica = device.replica else {
            throw StoreError(.replicaMismatch, "the frame's replica is not this device's")
        }
        guard replica == request.replica else {
            // A former replica of this device: its first answer (the new id) was lost, or another
            // process on the same file has not noticed yet. Tell it again, changing nothing.
            let former = try await writer.read { db in
                try Bool.fetchOne(db, sql: "SELECT 1 FROM device_replica WHERE replica = ? AND device = ?",
                                  arguments: [request.replica.databaseValue, device.id]) != nil
            }
            guard former else { throw StoreError(.replicaMismatch, "the frame's replica is not this device's") }
            throw StoreError.rolledBack(to: replica, clock: try await writer.read { db in try Self.hybridClock(db).last })
        }
        if device.movingTo != nil && request.changes.isEmpty {
            // Only with nothing to push: what the device wrote for its old branch is stored there first.
            try await completeMove(of: device)
        }
        guard request.changes.count <= limits.maxChangesPerPush else {
            throw StoreError(.tooManyChanges, "\(request.changes.count) changes in one push; the limit is \(limits.maxChangesPerPush)")
        }
        // Invariant 2: refuse the whole push if any version is too far ahead; nothing from a clock
        // that wrong can be ordered sensibly against everyone else's.
        let wall = clock.milliseconds()
        do {
            try HybridLogicalClock.check(request.clock, wall: wall, maxDrift: limits.maxClockDriftMilliseconds)
            for pushed in request.changes {
                try HybridLogicalClock.check(pushed.change.version.hlc, wall: wall, maxDrift: limits.maxClockDriftMilliseconds)
            }
        } catch {
            throw StoreError(.clockDrift, error.description)
        }

        var accepted = 0, conflicts = 0
        var acknowledged = device.acknowledged
        var rejected: [Rejection] = []
        var refusedNow: [RejectionReason: Int] = [:]
        var writeWait: Duration?
        if !request.changes.isEmpty {
            let queued = ContinuousClock.now
            let store = self
            let (outcome, wait) = try await pushCommits.run(on: writer) { db in
                // Measured inside: the time until this push's savepoint begins is the queue it sat in under load.
                let wait = ContinuousClock.now - queued
                return (try store.push(request, device: device, replica: replica, evidence: evidence, db: db), wait)
            }
            writeWait = wait
            switch outcome {
            case .stored(let result, let erased):
                (acknowledged, rejected, accepted, conflicts, refusedNow) = result
                appendToLedger(erased)
            case .rolledBack(let next, let clock): throw StoreError.rolledBack(to: next, clock: clock)
            }
        } else if (device.lastSeenAt?.timeIntervalSince1970 ?? 0) < Double(wall) / 1000 - Self.lastSeenInterval {
            // A pull is a read: the last-seen time is bookkeeping, and a full disk must not fail the pull.
            do {
                try await writer.write { db in
                    try db.execute(sql: "UPDATE device SET last_seen_at = ?, pending = ?, app_version = ? WHERE id = ?",
                                   arguments: [Double(wall) / 1000, evidence.pending, evidence.appVersion, device.id])
                }
            } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
                condition.isFull = true
            }
        }
        if request.changes.contains(where: { $0.change.operation == .erase }) {
            // Invariant 9: erased values must not linger in WAL frames.
            await StorageConfiguration.checkpointTruncating(writer)
        }
        var (response, scrubPending) = try await writer.read { db in
            (try pull(after: request.cursor, limit: request.pageLimit, for: device, limits: limits, db: db),
             try StorageConfiguration.isScrubPending(db))
        }
        if scrubPending {
            // One a long reader held back earlier (SPEC 7.6); known from the pull's own read, not an extra one.
            await StorageConfiguration.checkpointTruncating(writer)
        }
        response.acknowledged = acknowledged
        response.rejected = rejected
        var outcome = SyncOutcome(response: response, accepted: accepted, rejected: rejected.count, conflicts: conflicts,
                                  epoch: try await epoch(), detectedRestore: restored)
        outcome.rejectedByReason = refusedNow
        outcome.writeWait = writeWait
        return outcome
    }

    /// The proofs that this store is older than what a terminal saw (SPEC 7.9): a cursor past the last
    /// seq, an acknowledged counter above the one stored, or a replica id of this device's that the
    /// store never heard of (given after the backup was taken; it is adopted). Any of them changes the
    /// epoch, in the same transaction. Returns whether it did.
    private func detectRestore(_ request: SyncRequest, device: inout Device, evidence: SyncEvidence, db: Database) throws -> Bool {
        let lastSeq = UInt64(try SyncMeta.get("last_seq", in: db) as Int64? ?? 0)
        // The device says this store acknowledged its changes under an id the store never handed out.
        let unknownReplica = try (evidence.acknowledged ?? 0) > 0 && request.replica != device.replica && !Self.isReplicaTaken(request.replica, db)
        let proof = unknownReplica || request.cursor > lastSeq
            || (request.replica == device.replica && (evidence.acknowledged ?? 0) > device.acknowledged)
        guard proof else { return false }
        if unknownReplica {
            // A replica id this store never handed out, from a device its token authenticates: given
            // after the backup was taken (enrollment, or 7.8). Adopted even when this open has already
            // acted on a proof, or the device would be refused for good.
            try db.execute(sql: "INSERT INTO device_replica (replica, device) VALUES (?, ?)", arguments: [request.replica.databaseValue, device.id])
            try db.execute(sql: "UPDATE device SET replica = ?, acknowledged = 0 WHERE id = ?", arguments: [request.replica.databaseValue, device.id])
            device.replica = request.replica
            device.acknowledged = 0
        }
        // Proof from a device is trusted once per time the store is opened: a restore needs a restart,
        // and a buggy or hostile terminal must not make every terminal re-send everything at will.
        guard try SyncMeta.get("restore_detected_by_open", in: db) as String? != openID else { return false }
        try SyncMeta.set("restore_detected_by_open", openID, in: db)
        let how = unknownReplica ? "unknown_replica" : request.cursor > lastSeq ? "cursor_past_last_seq" : "acknowledged_above_stored"
        _ = try markRestored(db, how: "proof from device \(device.id): \(how)")
        return true
    }

    enum PushOutcome: Sendable {
        /// Acknowledged counter, rejections to report (replays included), accepted, conflicts, refused by this push.
        /// What the push stored, and the enquiries it erased (for the ledger, once committed).
        case stored((UInt64, [Rejection], Int, Int, [RejectionReason: Int]), erased: [ErasureLedger.Entry])
        /// The push re-used counters for other changes: the device now carries on as this replica.
        case rolledBack(ReplicaID, HLC)
    }

    func push(_ request: SyncRequest, device: Device, replica: ReplicaID, evidence: SyncEvidence, db: Database) throws -> PushOutcome {
        let stored = UInt64(try Int64.fetchOne(db, sql: "SELECT acknowledged FROM device WHERE id = ?", arguments: [device.id]) ?? 0)
        if try isRolledBack(request, acknowledged: stored, replica: replica, db: db) {
            return try carryOnUnderNewReplica(device: device, replacing: replica, db: db)
        }
        var session = try WriteSession(db: db, store: self)
        session.actor = device.id
        let fresh = request.changes.filter { $0.counter > stored }
        let pending = PendingRows(fresh.map(\.change))
        var toApply: [(Change, String?)] = []
        var rejectedNow: [Rejection] = []
        for pushed in fresh {
            switch try authorize(pushed.change, device: device, pending: pending, cursor: request.cursor, session: session) {
            case .failure(let refusal):
                rejectedNow.append(Rejection(counter: pushed.counter, reason: refusal.reason))
            case .success(let scope):
                session.receive(pushed.change.version.hlc)
                toApply.append((pushed.change, scope))
            }
        }
        try session.apply(toApply, detectConflicts: true)
        try session.finish()

        // Rejections are kept as long as the push log: a replayed push — its first answer lost, or
        // re-sent by a file restored from an older copy of itself that never saw the answer — reports
        // them again, and the change is dead-lettered instead of taken for stored.
        for rejection in rejectedNow {
            try db.execute(sql: "INSERT OR REPLACE INTO sync_rejection (replica, counter, reason) VALUES (?, ?, ?)",
                           arguments: [replica.databaseValue, Int64(rejection.counter), Int64(rejection.reason.rawValue)])
        }
        let counters = request.changes.map(\.counter)
        let acknowledged = max(stored, counters.max()!)
        try db.execute(sql: "DELETE FROM sync_rejection WHERE replica = ? AND counter < ?",
                       arguments: [replica.databaseValue, Int64(acknowledged) - Self.pushLogWindow])
        let rejected = try Row.fetchAll(db, sql: "SELECT counter, reason FROM sync_rejection WHERE replica = ? AND counter BETWEEN ? AND ? ORDER BY counter",
                                        arguments: [replica.databaseValue, Int64(counters.min()!), Int64(counters.max()!)]).compactMap { row in
            RejectionReason(rawValue: UInt8(row["reason"] as Int64)).map { Rejection(counter: UInt64(row["counter"] as Int64), reason: $0) }
        }
        let now = Double(clock.milliseconds()) / 1000
        try db.execute(sql: "UPDATE device SET acknowledged = ?, last_seen_at = ?, pending = ?, app_version = ? WHERE id = ?",
                       arguments: [Int64(acknowledged), now, evidence.pending, evidence.appVersion, device.id])
        try Self.audit("sync", device: device.id, branch: device.branch, detail: [
            "pushed": String(request.changes.count), "accepted": String(toApply.count), "rejected": String(rejectedNow.count),
            "conflicts": String(session.conflictsRecorded),
        ], at: now, db: db)
        try db.execute(sql: "INSERT OR REPLACE INTO sync_push_log (replica, last_counter, fingerprints) VALUES (?, ?, ?)",
                       arguments: [replica.databaseValue, Int64(counters.max()!), PushFingerprints(request.changes).encoded])
        try db.execute(sql: "DELETE FROM sync_push_log WHERE replica = ? AND last_counter < ?",
                       arguments: [replica.databaseValue, Int64(acknowledged) - Self.pushLogWindow])
        let refused = Dictionary(rejectedNow.map { ($0.reason, 1) }, uniquingKeysWith: +)
        return .stored((acknowledged, rejected, toApply.count, session.conflictsRecorded, refused), erased: session.erased)
    }

    /// How stale a device's last-seen time may get before a pull records it (seconds): most pulls write nothing.
    static let lastSeenInterval: Double = 60

    /// How many counters back the push log reaches. A replay older than that (a request held back by
    /// the network across this many later changes) is taken for a restore: harmless, since carrying on
    /// under a new replica id loses nothing, only churns the id.
    static let pushLogWindow: Int64 = 20_000

    /// Invariant 10: a counter at or below the high-water mark is a replay — a retry after a lost answer,
    /// a duplicated or late request — only if it says what it said the first time. Otherwise this file
    /// was restored from an older copy and re-used counters its lost future had pushed (SPEC 7.8).
    private func isRolledBack(_ request: SyncRequest, acknowledged: UInt64, replica: ReplicaID, db: Database) throws -> Bool {
        let replayed = request.changes.filter { $0.counter <= acknowledged }
        guard let oldest = replayed.first?.counter else { return false }
        let logs = try Data.fetchAll(db, sql: "SELECT fingerprints FROM sync_push_log WHERE replica = ? AND last_counter >= ?",
                                     arguments: [replica.databaseValue, Int64(oldest)])
        // A replica that pushed only before this store kept a log: trusted, as before.
        if logs.isEmpty, try Bool.fetchOne(db, sql: "SELECT 1 FROM sync_push_log WHERE replica = ? LIMIT 1", arguments: [replica.databaseValue]) == nil {
            return false
        }
        var known: [UInt64: UInt64] = [:]
        for log in logs { known.merge(PushFingerprints(encoded: log).fingerprints) { first, _ in first } }
        return replayed.contains { known[$0.counter] != $0.change.fingerprint }
    }

    /// A terminal restored from an older copy of its file re-used counters (and maybe clock readings)
    /// that its lost future had already pushed. It gets a new replica id, next to the old one so that
    /// re-stamping its pending versions keeps their order against everyone else's (SPEC 7.8).
    private func carryOnUnderNewReplica(device: Device, replacing old: ReplicaID, db: Database) throws -> PushOutcome {
        var candidates = [old.rawValue &+ 1, old.rawValue &- 1]
        var generator = random
        while let candidate = candidates.first, try Self.isReplicaTaken(ReplicaID(candidate), db) {
            candidates.removeFirst()
            // Both neighbours taken (it has happened twice in a row): any free id will do.
            if candidates.isEmpty { candidates.append(ReplicaID.random(using: &generator).rawValue) }
        }
        let next = ReplicaID(candidates[0])
        let now = Double(clock.milliseconds()) / 1000
        try db.execute(sql: "UPDATE device_replica SET superseded_at = ? WHERE replica = ?", arguments: [now, old.databaseValue])
        try db.execute(sql: "INSERT INTO device_replica (replica, device) VALUES (?, ?)", arguments: [next.databaseValue, device.id])
        try db.execute(sql: "UPDATE device SET replica = ?, acknowledged = 0, last_seen_at = ? WHERE id = ?",
                       arguments: [next.databaseValue, now, device.id])
        return .rolledBack(next, try Self.hybridClock(db).last)
    }

    /// Whether a device may apply a pushed change (invariant 7): the row's scope if so, the reason if not.
    private func authorize(_ change: Change, device: Device, pending: PendingRows, cursor: UInt64, session: WriteSession) throws -> Result<String, Refusal> {
        let table = change.table
        if Schema.problem(rowID: change.row) != nil { return .failure(Refusal(.invalid)) }
        if table == .conflict { return .failure(Refusal(.immutable)) }
        if device.role == .terminal && table != .enquiry && table != .enquiryNote { return .failure(Refusal(.forbidden)) }
        if case .write(let column, let value, _) = change.operation {
            if table.definition.problem(writing: value, to: column) != nil { return .failure(Refusal(.invalid)) }
            // An enquiry always belongs to one branch: a null branch would show it to every branch.
            if table == .enquiry && column == Columns.Enquiry.branch && (value.text ?? "").isEmpty { return .failure(Refusal(.invalid)) }
        }
        let key = RowKey(table, change.row)
        if change.operation == .erase || change.operation == .delete, table == .enquiry,
           try session.scope(of: key, pending: pending) == nil, !(try session.isDeleted(key)) {
            // Taken and deleted or erased on one terminal before it ever synced (issue 10 item 8), or
            // re-sent after a store restore (SPEC 7.9) that forgot the row: there is nothing to remove;
            // the tombstone, in the writer's branch, keeps a late copy of its writes from ever being
            // stored, and nothing is left to dead-letter.
            return .success(device.branch)
        }
        guard let scope = try session.scope(of: key, pending: pending) else {
            // A note whose enquiry is unknown or deleted is out of everyone's scope; an enquiry must name its branch.
            return .failure(Refusal(table == .enquiryNote ? .outOfScope : .invalid))
        }
        if table == .enquiryNote {
            // Notes are insert-only and are erased only with their enquiry.
            guard case .write(let column, _, _) = change.operation else { return .failure(Refusal(.immutable)) }
            if let existing = try session.version(of: key, column: column), existing != change.version,
               try !isResent(change, column: column, existing: existing, device: device, db: session.db)
            {
                return .failure(Refusal(.immutable))
            }
        }
        if device.role == .terminal {
            if try scope != device.branch && !isForwarded(change, key: key, pending: pending, from: device.branch, cursor: cursor, session: session)
                && !fillsRestoredGap(change, key: key, session: session)
            {
                return .failure(Refusal(.outOfScope))
            }
            if case .write(let column, let value, _) = change.operation, column == table.definition.branchColumn, value.text != device.branch {
                return .failure(Refusal(.outOfScope))
            }
        }
        return .success(scope)
    }

    /// A note its own author pushes again (SPEC 7.8): the lost future of a file restored from an older
    /// copy had stored it, and the restored file, which still held it pending, re-sends it under the id
    /// the server then gave it. Same value, stored under a replica id of the same device: the same write
    /// (a note id is drawn once), not an edit. The clock reading may differ: a note stamped while the
    /// clock ran ahead is re-issued (SPEC 7.7) by each future, at its own time. Refused, the author
    /// would dead-letter it and drop its own copy of a note the server holds.
    private func isResent(_ change: Change, column: ColumnID, existing: Version, device: Device, db: Database) throws -> Bool {
        guard case .write(_, let value, _) = change.operation else { return false }
        let stored = try DatabaseValue.fetchOne(db, sql: "SELECT value FROM sync_cell WHERE tbl = ? AND row = ? AND col = ?",
                                                arguments: [Int64(change.table.rawValue), change.row, Int64(column.rawValue)])
        guard stored.flatMap(Value.fromDatabaseValue) == value else { return false }
        return try Bool.fetchOne(db, sql: "SELECT 1 FROM device_replica WHERE replica = ? AND device = ?",
                                 arguments: [existing.replica.databaseValue, device.id]) != nil
    }

    /// History re-sent after a store restore (base seq 2^63 − 1, SPEC 7.9) for a cell the row lacks: the
    /// restored store took a later change to the row (a move, re-sent first by the editor) before the
    /// row's creation, which only its author holds. Filling a cell no one else has set is the row's
    /// own history coming back, not a write into another branch's record; a cell already set is left
    /// to the usual rules.
    private func fillsRestoredGap(_ change: Change, key: RowKey, session: WriteSession) throws -> Bool {
        // Only in a store that was restored: elsewhere a base seq of 2^63 − 1 is no re-sent history, and
        // must not let a terminal write into another branch's rows.
        guard session.wasRestored, case .write(let column, _, let baseSeq) = change.operation, baseSeq == UInt64(Int64.max),
              column != key.table.definition.branchColumn
        else { return false }
        return try session.version(of: key, column: column) == nil && !session.isDeleted(key)
    }

    /// Work done on an enquiry by a terminal of the branch it has since left, before that terminal could
    /// know — its cursor, or the base seq of the cell it edited, is above 0 and below the move's exit
    /// for its branch: a status set or a note added offline. It follows the enquiry to its new branch
    /// rather than being refused (SPEC 7.5).
    private func isForwarded(_ change: Change, key: RowKey, pending: PendingRows, from branch: String, cursor: UInt64,
                             session: WriteSession) throws -> Bool
    {
        guard case .write(let column, _, let baseSeq) = change.operation, column != key.table.definition.branchColumn else { return false }
        let enquiry: String
        switch key.table {
        case .enquiry: enquiry = key.row
        case .enquiryNote:
            guard let stored = try session.noteEnquiry(key) ?? pending.noteEnquiries[key] else { return false }
            enquiry = stored
        default: return false
        }
        guard let exit = try Int64.fetchOne(session.db, sql: "SELECT max(seq) FROM sync_exit WHERE tbl = ? AND row = ? AND branch = ?",
                                            arguments: [Int64(TableID.enquiry.rawValue), enquiry, branch])
        else { return false }
        let unaware = { (seen: UInt64) in seen > 0 && Int64(seen) < exit }
        return unaware(cursor) || (key.table == .enquiry && unaware(baseSeq))
    }

    func pull(after cursor: UInt64, limit requested: UInt32, for device: Device, limits: SyncLimits, db: Database) throws -> SyncResponse {
        let limit = min(requested == 0 ? limits.defaultPageSize : Int(requested), limits.maxPageSize)
        // Invariant 7: every device, editors included, pulls only its branch and what is for everyone.
        // Two ranges of the (scope, seq) index, each already in seq order, merged: the cost of a pull is
        // what it returns, however much other branches wrote since the cursor. (Branch ids are never
        // empty, so the two ranges never overlap.)
        let sql = """
            SELECT seq, tbl, row, col, value, hlc, replica FROM (
                SELECT * FROM (SELECT seq, tbl, row, col, value, hlc, replica FROM sync_cell
                               WHERE scope = '' AND seq > ? ORDER BY seq LIMIT ?)
                UNION ALL
                SELECT * FROM (SELECT seq, tbl, row, col, value, hlc, replica FROM sync_cell
                               WHERE scope = ? AND seq > ? ORDER BY seq LIMIT ?)
            ) ORDER BY seq LIMIT ?
            """
        var changes: [PulledChange] = []
        changes.reserveCapacity(min(limit, 4096))
        let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: [
            Int64(cursor), limit + 1, device.branch, Int64(cursor), limit + 1, limit + 1,
        ])
        var more = false
        var pageBytes = 0
        while let row = try rows.next() {
            // A page ends at the cell limit, or early once its values pass the byte budget, so that
            // long content bodies never push a response past the client's inflate limit.
            if changes.count == limit || pageBytes >= limits.pageByteBudget {
                more = true
                break
            }
            guard let table = TableID(rawValue: UInt8(truncatingIfNeeded: row[1] as Int64)) else { continue }
            let column: Int64 = row[3]
            let value = Value.fromDatabaseValue(row[4]) ?? .null
            let id: String = row[2]
            pageBytes += value.approximateSize + id.utf8.count
            let operation: Change.Operation =
                column == 0
                ? (value == .integer(2) ? .erase : .delete)
                : .write(column: ColumnID(UInt8(truncatingIfNeeded: column)), value: value, baseSeq: 0)
            changes.append(PulledChange(
                seq: UInt64(row[0] as Int64),
                change: Change(table: table, row: id, operation: operation,
                               version: Version(hlc: HLC(databaseValue: row[5]), replica: ReplicaID(databaseValue: row[6])))))
        }
        let lastSeq = UInt64(try SyncMeta.get("last_seq", in: db) as Int64? ?? 0)
        var next = more ? changes.last!.seq : max(cursor, lastSeq)
        var exits: [ScopeExit] = []
        if next > cursor {
            // Exits count against the page too: moving thousands of enquiries away from a branch leaves
            // that branch a window of exits and no cells, which must still come in bounded pages.
            let rows = try Row.fetchAll(db, sql: "SELECT seq, tbl, row FROM sync_exit WHERE branch = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                                        arguments: [device.branch, Int64(cursor), Int64(next), limit + 1])
            if rows.count > limit {
                next = UInt64(rows[limit - 1]["seq"] as Int64)
                changes.removeAll { $0.seq > next }
                more = true
            }
            exits = rows.prefix(limit).compactMap { row in
                TableID(rawValue: UInt8(truncatingIfNeeded: row["tbl"] as Int64)).map { ScopeExit(seq: UInt64(row["seq"] as Int64), table: $0, row: row["row"]) }
            }
        }
        let last = HLC(databaseValue: try SyncMeta.get("last_hlc", in: db) ?? 0)
        let now = max(last, HLC(milliseconds: min(clock.milliseconds(), HLC.maxMilliseconds), counter: 0))
        return SyncResponse(clock: now, acknowledged: 0, changes: changes, exits: exits, cursor: next, more: more)
    }
}


/// The counters of one push with the fingerprints of their changes, as stored in
/// `sync_push_log.fingerprints`: 16 bytes a change, counter then fingerprint, little-endian.
struct PushFingerprints {
    let fingerprints: [UInt64: UInt64]

    init(_ changes: [PushedChange]) {
        fingerprints = Dictionary(changes.map { ($0.counter, $0.change.fingerprint) }, uniquingKeysWith: { first, _ in first })
    }

    init(encoded data: Data) {
        var fingerprints: [UInt64: UInt64] = [:]
        let bytes = [UInt8](data)
        func word(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        for start in stride(from: 0, to: bytes.count - 15, by: 16) {
            fingerprints[word(start)] = word(start + 8)
        }
        self.fingerprints = fingerprints
    }

    var encoded: Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(fingerprints.count * 16)
        for (counter, fingerprint) in fingerprints {
            for value in [counter, fingerprint] {
                for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
            }
        }
        return Data(bytes)
    }
}

/// A pushed change the server will not apply, and why.
private struct Refusal: Error {
    let reason: RejectionReason
    init(_ reason: RejectionReason) { self.reason = reason }
}

extension Value {
    /// Roughly the bytes this value takes in a frame.
    var approximateSize: Int {
        switch self {
        case .null: 1
        case .integer, .real: 9
        case .text(let text): text.utf8.count + 3
        case .blob(let bytes): bytes.count + 3
        }
    }
}
