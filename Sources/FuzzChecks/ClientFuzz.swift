import Foundation
import GRDB
import Logging
import SyncClient
import SyncCore

/// `fuzz-client`: a terminal's handling of whatever a server (or anything posing as one) answers.
///
/// An enrolled-looking ``Replica`` with pulled rows, a conflict and a pending outbox runs
/// ``SyncEngine/sync(progress:)`` against a transport that answers with responses made from the
/// input: arbitrary bytes (deflated or not), sync_response frames built field by field with hostile
/// values, and problems with any status and code. Thrown errors are fine; a trap is not, and
/// afterwards the file must pass `PRAGMA integrity_check` and the app's reads must not trap either.
///
/// The replica is restored from an in-memory copy before every input, so outcomes do not depend on
/// earlier inputs.
package final class ClientFuzz: Sendable {
    /// The terminal's wall clock: fixed, like the server's in ``EndpointFuzz``.
    package static let now = EndpointFuzz.now
    static let me = ReplicaID(0x5EED_0000_0000_00A1)
    static let server = ReplicaID(0x5EED_0000_0000_0001)
    static let other = ReplicaID(0x5EED_0000_0000_00B2)

    let replica: Replica
    let pristine: DatabaseQueue
    let logger: Logger

    /// Creates the replica in `directory` (removed first if present).
    package init(directory: String) async throws {
        try? FileManager.default.removeItem(atPath: directory)
        replica = try Replica.open(at: directory + "/replica.sqlite", clock: FixedClock(Self.now))
        // Durability is not under test, and an fsync per transaction would cost most of the run.
        try await replica.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
        var logger = Logger(label: "fuzz-client")
        logger.logLevel = .critical
        self.logger = logger
        try replica.assumeIdentity(ReplicaIdentity(replica: Self.me, branch: "harley-street", role: .terminal, server: "fuzz"),
                                   token: "cs1_fuzz")

        // What a first pull would have brought: content, the enquiry with a note, and a conflict on it.
        let engine = SyncEngine(replica: replica, transport: ScriptedTransport([]), logger: logger)
        var seq: UInt64 = 0
        func pulled(_ table: TableID, _ row: String, _ cells: [(ColumnID, Value)], by author: ReplicaID = ClientFuzz.server) -> [PulledChange] {
            cells.map { column, value in
                seq += 1
                return PulledChange(seq: seq, change: Change(
                    table: table, row: row, operation: .write(column: column, value: value, baseSeq: 0),
                    version: Version(hlc: HLC(milliseconds: Self.now - 60_000, counter: UInt16(seq)), replica: author)))
            }
        }
        var changes = pulled(.branch, "harley-street", [(Columns.Branch.name, "Harley Street")])
        changes += pulled(.content, "manual-therapy", [(Columns.Content.kind, "page"), (Columns.Content.slug, "manual-therapy"),
                                                       (Columns.Content.published, 1), (Columns.Content.position, 3)])
        changes += pulled(.enquiry, FuzzInput.enquiry, [(Columns.Enquiry.branch, "harley-street"), (Columns.Enquiry.name, "Test Patient A"),
                                                        (Columns.Enquiry.status, "contacted"), (Columns.Enquiry.consentToContact, 1)])
        changes += pulled(.enquiryNote, FuzzInput.note, [(Columns.Note.enquiry, .text(FuzzInput.enquiry)), (Columns.Note.body, "called back")],
                          by: Self.other)
        changes += pulled(.conflict, FuzzInput.conflict, [
            (Columns.Conflict.tableName, "enquiry"), (Columns.Conflict.rowID, .text(FuzzInput.enquiry)), (Columns.Conflict.columnName, "status"),
            (Columns.Conflict.winnerValue, "contacted"), (Columns.Conflict.winnerReplica, .text(Self.server.description)),
            (Columns.Conflict.winnerHLC, .integer(HLC(milliseconds: Self.now - 60_000, counter: 7).databaseValue)),
            (Columns.Conflict.loserValue, "booked"), (Columns.Conflict.loserReplica, .text(Self.me.description)),
            (Columns.Conflict.loserHLC, .integer(HLC(milliseconds: Self.now - 61_000, counter: 0).databaseValue)),
            (Columns.Conflict.branch, "harley-street"), (Columns.Conflict.resolved, 0), (Columns.Conflict.detectedAt, "2025-11-29T01:33:20Z"),
        ])
        let page = SyncResponse(clock: HLC(milliseconds: Self.now, counter: 0), acknowledged: 0, changes: changes, cursor: seq, more: false)
        _ = try engine.apply(page, pushed: [])

        // A pending outbox: a new enquiry, an edit and a note on the pulled one (counters 1…).
        try replica.enquiries.add(NewEnquiry(name: "Test Patient C", phone: "020 7946 0001", preferredContact: "phone"), id: FuzzInput.otherEnquiry)
        try replica.enquiries.update(FuzzInput.enquiry, status: "booked")
        try replica.enquiries.addNote(to: FuzzInput.enquiry, body: "left a message", id: "7a7b7c7d-0000-4000-8000-000000000005")
        pristine = try DatabaseQueue()
        try replica.writer.backup(to: pristine)
    }

    /// One fuzz input: a scripted server, one sync cycle, then the app's reads and an integrity check.
    package func check(_ bytes: [UInt8]) async throws {
        try pristine.backup(to: replica.writer)
        var input = FuzzInput(bytes)
        var script: [TransportResponse] = []
        for _ in 0..<(1 + input.int(below: 4)) {
            script.append(response(&input))
            if input.isExhausted { break }
        }
        var engine = SyncEngine(replica: replica, transport: ScriptedTransport(script), logger: logger)
        // Small batches make the outbox span several round trips, so acks and splits meet more pages.
        engine.pushBatchSize = 1 + input.int(below: 16)
        _ = try? await engine.sync()

        // What a terminal app reads after a sync must not trap on what the server sent either.
        _ = try? replica.status()
        _ = try? replica.enquiries.list()
        _ = try? replica.enquiries.notes(of: FuzzInput.enquiry)
        _ = try? replica.content.list()
        _ = try? replica.conflicts.list(includeResolved: true)
        _ = try? replica.deadLetters()
        let integrity = try await replica.writer.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        guard integrity == ["ok"] else { throw FuzzFinding("integrity_check: \(integrity.count) problems") }
    }

    /// One answer from the scripted server.
    private func response(_ input: inout FuzzInput) -> TransportResponse {
        let frameType = "application/vnd.clinicsync.frame"
        switch input.byte() % 8 {
        case 0:
            // Arbitrary bytes as the body, as they came.
            return TransportResponse(status: 200, contentType: frameType, body: input.take(input.int(below: 1 << 16)))
        case 1:
            // Arbitrary bytes as the frame, deflated properly.
            return TransportResponse(status: 200, contentType: frameType, body: Deflate.compress(input.take(input.int(below: 1 << 16))))
        case 2:
            // A problem: any status, a code the client acts on, or no JSON at all.
            let status = input.pick([400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504, 200, 302, 0, -1, Int.max])
            let code = input.pick(["clock_drift", "too_many_changes", "body_too_large", "inflated_too_large", "compression_ratio_exceeded",
                                   "wrong_frame_type", "unsupported_version", "unknown_token", "invalid_enrollment_code", "internal_error", ""])
            let json = input.bool()
                ? Array(#"{"code":"\#(code)","detail":"d","status":\#(status)}"#.utf8)
                : input.take(input.int(below: 64))
            return TransportResponse(status: status, contentType: "application/problem+json", body: json)
        default:
            var frame = FrameCodec.encode(syncResponse(&input))
            if input.byte() % 8 == 0 {
                frame[input.int(below: frame.count)] = input.byte()
            }
            return TransportResponse(status: 200, contentType: frameType, body: Deflate.compress(frame))
        }
    }

    /// A sync_response built field by field: clocks, counters, seqs and cursors at their boundaries,
    /// changes of any table, column and value (types the schema forbids included), exits of held rows.
    private func syncResponse(_ input: inout FuzzInput) -> SyncResponse {
        let clock = input.clock(near: HLC(milliseconds: Self.now, counter: 0))
        var response = SyncResponse(clock: clock, acknowledged: input.interestingUInt64(small: 16),
                                    cursor: input.interestingUInt64(), more: input.byte() % 4 == 0)
        for _ in 0..<input.int(below: 4) {
            response.rejected.append(Rejection(counter: input.interestingUInt64(small: 16), reason: input.pick(RejectionReason.allCases)))
        }
        var seq = input.interestingUInt64()
        var hlc = clock
        for index in 0..<input.int(below: 16) {
            if index > 0 { seq &+= input.byte() % 16 == 0 ? input.interestingUInt64() : 1 }
            hlc = input.bool() ? hlc : input.clock(near: hlc)
            let author = input.pick([Self.server, Self.me, Self.other, ReplicaID(0), ReplicaID(UInt64.max)])
            let change = input.change(at: Version(hlc: hlc, replica: author), sameRowAs: response.changes.last?.change)
            response.changes.append(PulledChange(seq: seq, change: change))
        }
        for _ in 0..<input.int(below: 3) {
            response.exits.append(ScopeExit(seq: input.interestingUInt64(), table: input.table(), row: input.rowID()))
        }
        return response
    }
}

/// Answers with the scripted responses in turn, then as a well-behaved server with nothing new:
/// everything pushed acknowledged, no more pages. A hard cap ends any cycle that would never stop.
final class ScriptedTransport: SyncTransport, @unchecked Sendable {
    private let lock = NSLock()
    private var script: [TransportResponse]
    private var calls = 0

    init(_ script: [TransportResponse]) {
        self.script = script
    }

    func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse {
        let next: TransportResponse? = lock.withLock {
            calls += 1
            return script.isEmpty ? nil : script.removeFirst()
        }
        if let next { return next }
        guard lock.withLock({ calls }) <= 64 else { throw SyncError.offline("the scripted server has hung up") }
        let request = try FrameCodec.decode(try Deflate.decompress(body), as: SyncRequest.self)
        let quiet = SyncResponse(clock: request.clock, acknowledged: request.changes.map(\.counter).max() ?? 0,
                                 cursor: request.cursor, more: false)
        return TransportResponse(status: 200, contentType: "application/vnd.clinicsync.frame", body: Deflate.compress(FrameCodec.encode(quiet)))
    }
}
