import Foundation
import GRDB
import Logging
import SyncCore
import SyncStorage

/// Progress of one sync cycle, reported after every round trip.
public struct SyncProgress: Sendable {
    public var pushed: Int
    public var pending: Int
    public var pulled: Int
    public var pages: Int
    public var bytesSent: Int
    public var bytesReceived: Int
}

/// What one sync cycle did.
public struct SyncSummary: Sendable, Codable, Hashable {
    /// Local changes acknowledged by the server.
    public var pushed = 0
    /// Of those, refused by the server and moved to the dead-letter table.
    public var rejected = 0
    /// Cell versions pulled and applied.
    public var pulled = 0
    /// Rows purged because they left this terminal's branch.
    public var purged = 0
    public var roundTrips = 0
    /// Deflated bytes on the wire, each way.
    public var bytesSent = 0
    public var bytesReceived = 0
    /// The same frames before deflate.
    public var frameBytesSent = 0
    public var frameBytesReceived = 0
    /// Open conflicts after the sync.
    public var openConflicts = 0
    public var cursor: UInt64 = 0
    public var seconds: Double = 0

    public init() {}
}

/// Runs sync cycles for a replica: push the outbox in batches, process acks, pull pages until the
/// end, applying each page and advancing the cursor in one transaction (invariant 6).
public struct SyncEngine: Sendable {
    public let replica: Replica
    public let transport: any SyncTransport
    /// Changes per push; the server's limit is 5,000.
    public var pushBatchSize = 500
    /// Cells per pull page asked for (the server caps it; 0: the server's default). Large pages mean
    /// fewer transactions, each with its fsync, on a bootstrap.
    public var pageSize: UInt32 = 10_000
    /// The server's clock drift bound (SPEC section 9), used to recognise versions stamped while this
    /// terminal's clock ran ahead, once it has been fixed.
    public var maxClockDrift: UInt64 = 5 * 60 * 1000
    var logger: Logger

    public init(replica: Replica, transport: any SyncTransport, logger: Logger = Logger(label: "clinic-sync.engine")) {
        self.replica = replica
        self.transport = transport
        self.logger = logger
    }

    /// One cycle. Safe to interrupt anywhere: what was committed stays, and the next cycle resumes.
    public func sync(progress: (@Sendable (SyncProgress) -> Void)? = nil) async throws -> SyncSummary {
        let started = ContinuousClock.now
        guard var identity = try replica.identity(),
              var token: String = try await replica.writer.read({ db in try SyncMeta.get(MetaKey.token, in: db) })
        else { throw SyncError(code: .notEnrolled, detail: ReplicaError.notEnrolled.detail) }
        // An erasure whose WAL scrub a reader held back: finish it first (SPEC 7.6).
        await StorageConfiguration.finishPendingScrub(replica.writer)
        var summary = SyncSummary()
        var reissued = false
        var rolledBack = false
        var resupplied = false
        var moved = false
        // A token received this cycle is used once more before the cycle ends, so the server retires the old one.
        var unconfirmedToken = false
        // Halved whenever the server refuses a push as a whole for its size (invariant 12).
        var batchLimit = pushBatchSize
        while true {
            let (request, pending, acknowledged, rotate) = try await replica.writer.read { [batchLimit, identity] db -> (SyncRequest, Int, Int64?, Bool) in
                let changes = try Outbox.batch(limit: batchLimit, replica: identity.replica, in: db)
                let request = SyncRequest(
                    replica: identity.replica, clock: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0),
                    cursor: UInt64(try SyncMeta.get(MetaKey.cursor, in: db) as Int64? ?? 0), pageLimit: pageSize, changes: changes)
                return (request, try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_outbox") ?? 0, try SyncMeta.get(MetaKey.acknowledged, in: db),
                        try SyncMeta.get(MetaKey.rotateToken, in: db) as Int64? == 1)
            }
            let frame = FrameCodec.encode(request)
            let body = Deflate.compress(frame)
            // What the server told us before: a store restored from an older copy has forgotten it (SPEC 7.9).
            // Pending: what stays unsent once this request is stored.
            var evidence = [ProtocolHeader.pending: String(max(0, pending - request.changes.count)), ProtocolHeader.appVersion: BuildInfo.version]
            if let acknowledged { evidence[ProtocolHeader.acknowledged] = String(acknowledged) }
            if rotate { evidence[ProtocolHeader.rotateToken] = "1" }
            let response = try await transport.post("/v1/sync", body: body, token: token, headers: evidence)
            let page: SyncResponse, inflated: Int
            do {
                (page, inflated) = try decode(response, as: SyncResponse.self)
            } catch let error as SyncError where error.code == .clockDrift && !reissued {
                // Refused for versions stamped while this clock ran ahead: once the clock is fixed, re-issue them and retry once.
                reissued = true
                guard try replica.reissueVersionsAhead(maxDrift: maxClockDrift) else { throw error }
                logger.notice("re-issued versions stamped while this terminal's clock ran ahead")
                continue
            } catch let error as SyncError where error.carryOnAs != nil && !rolledBack {
                // This file was restored from an older copy (SPEC 7.8): carry on under the new replica id.
                rolledBack = true
                let next = error.carryOnAs ?? identity.replica
                try replica.carryOn(as: next, replacing: identity.replica, serverClock: error.serverClock ?? .zero)
                logger.warning("this replica file was restored from an older copy; carrying on under a new replica id",
                               metadata: ["replica": .string(next.description)])
                guard let current = try replica.identity() else { throw SyncError(code: .notEnrolled, detail: ReplicaError.notEnrolled.detail) }
                identity = current
                continue
            } catch let error as SyncError where error.movedTo != nil && !moved {
                // An operator moved this device to another branch: the old branch's enquiries leave
                // this file (text included), and the new branch's are read from the start.
                moved = true
                let branch = error.movedTo ?? identity.branch
                let purged = try replica.move(to: branch)
                logger.warning("this device was moved to another branch; its enquiries were removed and the new branch's are read",
                               metadata: ["branch": .string(branch), "purged": .stringConvertible(purged)])
                guard let current = try replica.identity() else { throw SyncError(code: .notEnrolled, detail: ReplicaError.notEnrolled.detail) }
                identity = current
                continue
            } catch let error as SyncError where error.refusesRequestSize && !request.changes.isEmpty {
                // Split until every change is accepted or, alone, dead-lettered with the reason: one
                // change the server will never take must not hold back the rest of the outbox.
                if batchLimit > 1 && request.changes.count > 1 {
                    batchLimit = max(1, min(batchLimit, request.changes.count) / 2)
                    logger.notice("push refused for its size; splitting", metadata: [
                        "problem": .string(error.problem ?? ""), "batch": .stringConvertible(batchLimit),
                    ])
                } else {
                    try replica.deadLetter(request.changes, reason: error.problem ?? "refused")
                    summary.pushed += request.changes.count
                    summary.rejected += request.changes.count
                    logger.notice("a local write the server refuses at any size is dead-lettered", metadata: [
                        "problem": .string(error.problem ?? ""), "changes": .stringConvertible(request.changes.count),
                    ])
                }
                continue
            }
            // A page that says "more" must move the cursor, or this loop would never end.
            guard !page.more || page.cursor > request.cursor else {
                throw SyncError(code: .incompatibleServer, detail: "the server said more changes follow but did not advance the cursor (\(page.cursor))")
            }
            unconfirmedToken = false
            if let next = response.headers[ProtocolHeader.newToken], !next.isEmpty {
                // Kept before anything else: the server honours the old token only until this one is used.
                try await replica.writer.write { db in
                    try SyncMeta.set(MetaKey.token, next, in: db)
                    try db.execute(sql: "DELETE FROM sync_meta WHERE key = ?", arguments: [MetaKey.rotateToken])
                }
                token = next
                unconfirmedToken = true
                logger.notice("device token rotated")
            }
            let epoch = response.headers[ProtocolHeader.storeEpoch]
            if let epoch, !resupplied, try replica.storeEpoch().map({ $0 != epoch }) == true {
                // The server's store was restored from an older copy: send it everything this file
                // authored that it may have lost, and read everything again (SPEC 7.9).
                resupplied = true
                let count = try replica.resupplyAfterStoreRestore(epoch: epoch, serverClock: page.clock)
                logger.warning("the server's store was restored from an older copy; re-sending what this terminal wrote and re-reading everything",
                               metadata: ["changes": .stringConvertible(count)])
                continue
            }
            summary.roundTrips += 1
            summary.bytesSent += body.count
            summary.frameBytesSent += frame.count
            summary.bytesReceived += response.body.count
            summary.frameBytesReceived += inflated
            let applied = try apply(page, pushed: request.changes, epoch: epoch)
            summary.pushed += applied.acknowledged
            summary.rejected += applied.rejected
            summary.pulled += page.changes.count
            summary.purged += page.exits.count
            summary.cursor = page.cursor
            logger.debug("sync round trip", metadata: [
                "pushed": .stringConvertible(request.changes.count), "pulled": .stringConvertible(page.changes.count),
                "cursor": .stringConvertible(page.cursor), "more": .stringConvertible(page.more),
            ])
            progress?(SyncProgress(pushed: summary.pushed, pending: max(0, pending - request.changes.count), pulled: summary.pulled,
                                   pages: summary.roundTrips, bytesSent: summary.bytesSent, bytesReceived: summary.bytesReceived))
            let outboxLeft = pending > request.changes.count
            if !page.more && !outboxLeft && !unconfirmedToken { break }
        }
        try await replica.writer.write { db in
            try SyncMeta.set(MetaKey.lastSyncAt, Timestamp.iso8601(milliseconds: replica.wall.milliseconds()), in: db)
        }
        summary.openConflicts = try replica.conflicts.list().count
        summary.seconds = (ContinuousClock.now - started).seconds
        logger.debug("sync finished", metadata: [
            "pushed": .stringConvertible(summary.pushed), "rejected": .stringConvertible(summary.rejected),
            "pulled": .stringConvertible(summary.pulled), "round_trips": .stringConvertible(summary.roundTrips),
            "bytes_sent": .stringConvertible(summary.bytesSent), "bytes_received": .stringConvertible(summary.bytesReceived),
        ])
        return summary
    }

    /// Processes the ack and applies the page in one transaction.
    package func apply(_ page: SyncResponse, pushed: [PushedChange], epoch: String? = nil) throws -> (acknowledged: Int, rejected: Int) {
        var erased = false
        let result = try replica.writer.write { db -> (Int, Int) in
            var clock = HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0))
            try? clock.receive(page.clock, wall: replica.wall.milliseconds())
            try Replica.noteServerClock(page.clock, in: db)
            let rejectedCounters = Set(page.rejected.map(\.counter))
            let now = Timestamp.iso8601(milliseconds: replica.wall.milliseconds())
            for rejection in page.rejected {
                // The value is kept only while this terminal still holds the row: a row that left the
                // branch (or was never stored) leaves no patient text behind in a dead letter.
                try db.execute(sql: """
                    INSERT OR REPLACE INTO sync_dead_letter (counter, tbl, row, col, value, hlc, reason, rejected_at)
                    SELECT counter, tbl, row, col,
                        CASE WHEN EXISTS (SELECT 1 FROM sync_cell c WHERE c.tbl = o.tbl AND c.row = o.row) THEN value END, hlc, ?, ?
                    FROM sync_outbox o WHERE counter = ?
                    """, arguments: [rejection.reason.name, now, Int64(rejection.counter)])
            }
            let acknowledged = pushed.filter { $0.counter <= page.acknowledged }
            // Only what this request carried: an acknowledged counter beyond it names changes this file
            // has not sent. After a restore from an older copy of the file those are new changes under
            // re-used counters; pushed next, they show the server the rollback (SPEC 7.8) instead of
            // leaving the outbox unsent.
            let through = min(page.acknowledged, pushed.map(\.counter).max() ?? 0)
            try db.execute(sql: "DELETE FROM sync_outbox WHERE counter <= ?", arguments: [Int64(through)])
            try replica.purgeRowsNeverStored(page.rejected.compactMap { rejection in
                pushed.first { $0.counter == rejection.counter }.map { RowKey($0.change.table, $0.change.row) }
            }, in: db)

            var writes: [SequencedChange] = []
            func flush() throws {
                if !writes.isEmpty { _ = try replica.applier.apply(writes, in: db) }
                writes.removeAll(keepingCapacity: true)
            }
            // Exits and changes apply in seq order: a row that left this branch and came back within
            // one page is purged first, then re-delivered whole (SPEC 7.4), not purged after.
            var exits = page.exits.sorted { $0.seq < $1.seq }[...]
            for pulled in page.changes {
                while let exit = exits.first, exit.seq < pulled.seq {
                    try flush()
                    try replica.purge(RowKey(exit.table, exit.row), in: db)
                    exits.removeFirst()
                }
                try? clock.receive(pulled.change.version.hlc, wall: replica.wall.milliseconds())
                if case .write(let column, let value, _) = pulled.change.operation {
                    guard let definition = pulled.change.table.definition.column(column) else {
                        // A column from a newer schema: kept aside with its version for an upgrade to deliver (SPEC 10).
                        try UnknownCells.keep(pulled.change, value: value, seq: pulled.seq, in: db)
                        continue
                    }
                    // Column types never change within v1 (SPEC 10): a value of another storage class is a broken
                    // server's, and once stored it would trap every later read of the row (GRDB's typed decoding).
                    guard definition.type.accepts(value) else {
                        throw SyncError(code: .incompatibleServer, detail: "the server sent a \(pulled.change.table.name) value of the wrong type for column \(column.rawValue)")
                    }
                    writes.append(SequencedChange(pulled.change, seq: Int64(pulled.seq)))
                } else {
                    try flush()
                    try replica.applyDeletion(pulled.change, seq: Int64(pulled.seq), in: db)
                    erased = erased || pulled.change.operation == .erase
                }
            }
            try flush()
            for exit in exits { try replica.purge(RowKey(exit.table, exit.row), in: db) }
            // Purged rows, and refused changes whose text just left the outbox (their row may have left
            // this branch, or be erased elsewhere), must survive in no WAL frame or stale page either.
            erased = erased || !page.exits.isEmpty || !page.rejected.isEmpty
            try SyncMeta.set(MetaKey.cursor, Int64(page.cursor), in: db)
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
            if let epoch { try SyncMeta.set(MetaKey.storeEpoch, epoch, in: db) }
            // Never lowered: a lower answer is the evidence the next request carries (SPEC 7.9).
            let told = try SyncMeta.get(MetaKey.acknowledged, in: db) as Int64? ?? 0
            try SyncMeta.set(MetaKey.acknowledged, max(told, Int64(page.acknowledged)), in: db)
            return (acknowledged.count, acknowledged.filter { rejectedCounters.contains($0.counter) }.count)
        }
        // Erased and purged rows get the same secure deletion (SPEC 7.4, 7.6): no WAL frame keeps their text.
        if erased { StorageConfiguration.checkpointTruncating(replica.writer) }
        return result
    }

    /// Bounds on what a server may send. A page is at most a few MiB (the server's page byte budget);
    /// no ratio limit, since many notes of one repeated character are a legitimate page and the
    /// absolute bound already caps memory.
    static let responseLimits = InflateLimits(maxCompressedBytes: 64 << 20, maxInflatedBytes: 64 << 20, maxRatio: .max)

    /// Turns a transport response into a frame, or into a typed error.
    func decode<T>(_ response: TransportResponse, as: T.Type) throws -> (T, Int) {
        guard response.status == 200 else { throw Self.error(from: response) }
        do {
            let bytes = try Deflate.decompress(response.body, limits: Self.responseLimits)
            return (try FrameCodec.decode(bytes, as: T.self), bytes.count)
        } catch let error as FrameError {
            throw SyncError(code: .incompatibleServer, problem: error.code.rawValue, detail: error.description)
        } catch {
            throw SyncError(code: .incompatibleServer, detail: "the server's answer is not a deflated frame: \(error)")
        }
    }

    static func error(from response: TransportResponse) -> SyncError {
        struct Problem: Decodable { var code: String; var detail: String; var replica: String?; var clock: String?; var branch: String? }
        let problem = try? JSONDecoder().decode(Problem.self, from: Data(response.body))
        let code = problem?.code
        let detail = problem?.detail ?? "HTTP \(response.status)"
        switch (response.status, code) {
        case (409, "replica_rolled_back"):
            var error = SyncError(code: .refused, problem: code, detail: detail)
            error.carryOnAs = problem?.replica.flatMap(ReplicaID.init)
            error.serverClock = problem?.clock.flatMap { UInt64($0) }.flatMap { $0 <= UInt64(Int64.max) ? HLC(rawValue: $0) : nil }
            return error
        case (409, "device_moved"):
            var error = SyncError(code: .refused, problem: code, detail: detail)
            error.movedTo = problem?.branch.flatMap { $0.isEmpty ? nil : $0 }
            return error
        case (429, _):
            // Not an outage: the server answered, and says when to come back (a proxy's bare 429 too).
            var error = SyncError(code: .rateLimited, problem: code ?? "rate_limited", detail: detail)
            error.retryAfter = .seconds(retryAfterSeconds(response.headers[ProtocolHeader.retryAfter]))
            return error
        case (401, "invalid_enrollment_code"): return SyncError(code: .refused, problem: code, detail: detail)
        case (401, _): return SyncError(code: .unauthorized, problem: code, detail: detail)
        case (_, "clock_drift"): return SyncError(code: .clockDrift, problem: code, detail: detail)
        case (_, "unsupported_version"), (_, "wrong_frame_type"), (404, _): return SyncError(code: .incompatibleServer, problem: code, detail: detail)
        case (502...504, _): return SyncError(code: .offline, problem: code, detail: detail)
        // A proxy's bare 413 is a size refusal too: the client splits its push.
        case (413, nil): return SyncError(code: .refused, problem: CompressionError.Code.compressedTooLarge.rawValue, detail: detail)
        default: return SyncError(code: .refused, problem: code, detail: detail)
        }
    }
}

/// `Retry-After` in seconds: delay-seconds as the server sends it, or an HTTP date from a proxy; 1 s when
/// missing or unreadable, and at most an hour, so a wrong header can neither hammer nor silence a terminal.
func retryAfterSeconds(_ header: String?, now: Date = Date()) -> Int {
    let text = header?.trimmingCharacters(in: .whitespaces) ?? ""
    var seconds = 1
    if let value = Int(text) {
        seconds = value
    } else if !text.isEmpty {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: text) { seconds = Int(date.timeIntervalSince(now).rounded(.up)) }
    }
    return min(3_600, max(1, seconds))
}

extension Replica {
    /// Exchanges a one-time enrollment code for this terminal's identity and token, and stores them.
    ///
    /// On a file that is enrolled already (its device was revoked, or its token lost) this re-enrolls it
    /// and keeps everything it holds: the content, the enquiries, the cursor and the pending outbox,
    /// whose versions take the new replica id as ``carryOn(as:replacing:serverClock:)`` does (SPEC 7.8),
    /// so they reach the server under the new enrollment. The code must be for the branch the file
    /// holds: another branch's code is refused (the file holds patient data of its own branch only).
    ///
    /// `trust` says which server certificates to accept; it is kept with the identity so that later
    /// syncs (the daemon too) use the same. Over HTTP, a URL and trust that `sync` would refuse (plain
    /// HTTP beyond loopback) are refused here, before the code is sent.
    @discardableResult
    public func enroll(
        server: String, code: String, deviceName: String, trust: ServerTrust = .system, transport: (any SyncTransport)? = nil
    ) async throws -> ReplicaIdentity {
        // A transport given by the caller (the simulator's in-memory one) owns its URLs.
        if transport == nil { try trust.validate(server: server) }
        let former = try identity()
        let transport = transport ?? HTTPTransport(baseURL: server, trust: trust)
        let body = Deflate.compress(FrameCodec.encode(EnrollRequest(code: code, deviceName: deviceName)))
        let response = try await transport.post("/v1/enroll", body: body, token: nil)
        let (enrolled, _) = try SyncEngine(replica: self, transport: transport).decode(response, as: EnrollResponse.self)
        if let former, former.branch != enrolled.branch {
            throw ReplicaError(.alreadyEnrolled, """
                \(path) holds branch \(former.branch)'s enquiries, but the code is for \(enrolled.branch); nothing was changed here. \
                Enroll a new replica file for \(enrolled.branch), and revoke the device that code made (`clinic-sync admin device revoke`)
                """)
        }
        let identity = ReplicaIdentity(replica: enrolled.replica, branch: enrolled.branch, role: enrolled.role, server: server)
        try await writer.write { db in
            if let former {
                // Re-enrollment: pending versions take the new id; what the server acknowledged keeps the old one.
                try Self.restampPending(from: former.replica, to: enrolled.replica, in: db)
                try SyncMeta.set(MetaKey.acknowledged, 0, in: db)
            } else {
                try SyncMeta.set(MetaKey.cursor, 0, in: db)
            }
            try SyncMeta.set(MetaKey.replica, enrolled.replica.databaseValue, in: db)
            try SyncMeta.set(MetaKey.branch, enrolled.branch, in: db)
            try SyncMeta.set(MetaKey.role, enrolled.role.name, in: db)
            try SyncMeta.set(MetaKey.server, server, in: db)
            try SyncMeta.set(MetaKey.token, enrolled.token, in: db)
            try Self.setServerTrust(trust, in: db)
            var clock = HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get(MetaKey.lastHLC, in: db) ?? 0))
            try? clock.receive(enrolled.clock, wall: wall.milliseconds())
            try SyncMeta.set(MetaKey.lastHLC, clock.last.databaseValue, in: db)
            try Self.noteServerClock(enrolled.clock, in: db)
        }
        return identity
    }
}

extension Duration {
    /// Seconds as a Double, for summaries and benchmarks.
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
