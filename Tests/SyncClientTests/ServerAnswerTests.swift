import Foundation
import GRDB
import SyncClient
import SyncCore
import Testing

/// Answers every sync with `answer(request)`; gives up (offline) after `limit` calls, so a client
/// that would loop forever fails the test instead of hanging it.
final class AnsweringTransport: SyncTransport, @unchecked Sendable {
    private let lock = NSLock()
    private var calls = 0
    let limit: Int
    let answer: @Sendable (SyncRequest, Int) -> SyncResponse

    init(limit: Int = 100, answer: @escaping @Sendable (SyncRequest, Int) -> SyncResponse) {
        self.limit = limit
        self.answer = answer
    }

    var callCount: Int { lock.withLock { calls } }

    func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse {
        let call = lock.withLock { calls += 1; return calls }
        guard call <= limit else { throw SyncError.offline("the test server hung up after \(limit) calls") }
        let request = try FrameCodec.decode(try Deflate.decompress(body), as: SyncRequest.self)
        return TransportResponse(status: 200, contentType: "application/vnd.clinicsync.frame",
                                 body: Deflate.compress(FrameCodec.encode(answer(request, call))))
    }
}

@Suite("What a terminal does with a server's answers")
struct ServerAnswerTests {
    static let enquiry = "0a1b2c3d-0000-4000-8000-0000000000e1"

    func cell(_ seq: UInt64, _ column: ColumnID, _ value: Value, row: String = enquiry) -> PulledChange {
        PulledChange(seq: seq, change: Change(table: .enquiry, row: row, operation: .write(column: column, value: value, baseSeq: 0),
                                              version: Version(hlc: HLC(milliseconds: 1_764_380_000_000 + seq, counter: 0), replica: ReplicaID(0x5eed))))
    }

    /// A server that keeps saying "more" without moving the cursor would keep a terminal syncing forever.
    @Test func morePagesWithoutProgressEndTheCycleWithAClearError() async throws {
        try await Harness.run { harness in
            var terminal = try await harness.terminal("a")
            let stuck = AnsweringTransport { request, _ in
                SyncResponse(clock: request.clock, acknowledged: 0, changes: [], exits: [], cursor: request.cursor, more: true)
            }
            terminal.engine = SyncEngine(replica: terminal.replica, transport: stuck, logger: Harness.logger)
            let error = await #expect(throws: SyncError.self) { try await terminal.sync() }
            #expect(error?.code == .incompatibleServer, "\(String(describing: error))")
            #expect(stuck.callCount == 1)
        }
    }

    /// SPEC 10: a pulled cell of a column this build does not know is kept with its version (for an
    /// upgrade to deliver), the cursor moves on, and an erasure of its row removes it (invariant 9).
    @Test func cellsOfUnknownColumnsAreKeptUntilTheirRowIsErased() async throws {
        try await Harness.run { harness in
            var terminal = try await harness.terminal("a")
            let row: [PulledChange] = [
                cell(1, Columns.Enquiry.branch, "harley-street"), cell(2, Columns.Enquiry.name, "Test Patient"),
                cell(3, Columns.Enquiry.createdAt, "2026-11-29T10:00:00Z"), cell(4, Columns.Enquiry.status, "new"),
                cell(5, ColumnID(120), "from a newer schema"),
            ]
            let server = AnsweringTransport { request, call in
                if call == 1 { return SyncResponse(clock: request.clock, acknowledged: 0, changes: row, exits: [], cursor: 5, more: false) }
                let erase = PulledChange(seq: 6, change: Change(table: .enquiry, row: Self.enquiry, operation: .erase,
                                                                version: Version(hlc: HLC(milliseconds: 1_764_380_000_100, counter: 0), replica: ReplicaID(0x5eed))))
                return SyncResponse(clock: request.clock, acknowledged: 0, changes: [erase], exits: [], cursor: 6, more: false)
            }
            terminal.engine = SyncEngine(replica: terminal.replica, transport: server, logger: Harness.logger)
            try await terminal.sync()
            let kept = try terminal.replica.writer.read { db in
                try Row.fetchAll(db, sql: "SELECT row, col, value FROM sync_unknown_cell")
            }
            #expect(kept.count == 1)
            #expect(kept.first?["col"] == 120 && kept.first?["value"] == "from a newer schema")
            #expect(try terminal.replica.enquiries.get(Self.enquiry)?.status == "new")
            try await terminal.sync()
            let left = try await terminal.replica.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_unknown_cell") }
            #expect(left == 0)
        }
    }

    /// Row ids are bounded (SPEC 9): the library refuses a longer one at write time, so it never reaches an outbox.
    @Test func aRowIDOverTheLimitIsRefusedAtWriteTime() async throws {
        try await Harness.run { harness in
            let terminal = try await harness.terminal("a")
            let long = String(repeating: "7", count: Schema.maxRowIDBytes + 1)
            #expect(throws: ReplicaError.self) {
                try terminal.replica.write(.enquiry, long, [(Columns.Enquiry.branch, .text("harley-street"))])
            }
            #expect(try terminal.replica.status().pendingChanges == 0)
        }
    }
}
