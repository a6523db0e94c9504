import Foundation
import GRDB
import Logging
import SyncCore
import SyncServer

/// `fuzz-endpoint`: the server's ``SyncEndpoint`` over a real ``SQLiteServerStore`` in a temporary
/// folder, fed arbitrary bodies and structurally valid sync requests with hostile field values.
///
/// Every answer must be a response: a 4xx problem, or a 200 whose frame the server's own decoder
/// accepts. A 500 `internal_error` is a finding (SPEC 8.3: steps 1–11 refuse with a 4xx; the push
/// and pull of step 12 should not fail on any request that got past them). A push replayed after a
/// 200 must change nothing and get the same answer (invariant 4).
///
/// The store is set up once (two branches, seeded content, an enquiry with a note and a conflict,
/// a terminal and an editor of one branch, enrolled through the endpoint) and restored from an
/// in-memory copy before every input, so an input's outcome never depends on the ones before it.
package final class EndpointFuzz: Sendable {
    /// The server's wall clock: fixed, so drift checks and clock readings replay exactly.
    package static let now: UInt64 = 1_764_380_000_000

    struct Caller: Sendable {
        let replica: ReplicaID
        let bearer: String
    }

    let directory: String
    let store: SQLiteServerStore
    let endpoint: SyncEndpoint<SQLiteServerStore>
    let pristine: DatabaseQueue
    let terminal: Caller
    let editor: Caller

    /// Creates the store in `directory` (removed first if present).
    package init(directory: String) async throws {
        try? FileManager.default.removeItem(atPath: directory)
        self.directory = directory
        let random = SeededSource(seed: 0x5EED)
        store = try SQLiteServerStore(directory: directory, clock: FixedClock(Self.now), random: random.source)
        // Durability is not under test, and an fsync per request would cost most of the run.
        try await store.writerForTools.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
        var logger = Logger(label: "fuzz-endpoint")
        // Only an internal error's type is worth printing: it is the finding.
        logger.logLevel = .error
        endpoint = SyncEndpoint(store: store, random: random.source, logger: logger)

        try await store.saveBranch(id: "harley-street", name: "Harley Street", address: nil, phone: nil)
        try await store.saveBranch(id: "richmond", name: "Richmond", address: nil, phone: nil)
        try await store.write([
            CellWrite(.content, "manual-therapy", Columns.Content.kind, "page"),
            CellWrite(.content, "manual-therapy", Columns.Content.slug, "manual-therapy"),
            CellWrite(.content, "manual-therapy", Columns.Content.title, "Manual Therapy"),
            CellWrite(.enquiry, FuzzInput.enquiry, Columns.Enquiry.branch, "harley-street"),
            CellWrite(.enquiry, FuzzInput.enquiry, Columns.Enquiry.name, "Test Patient A"),
            CellWrite(.enquiry, FuzzInput.enquiry, Columns.Enquiry.status, "new"),
            CellWrite(.enquiryNote, FuzzInput.note, Columns.Note.enquiry, .text(FuzzInput.enquiry)),
            CellWrite(.enquiryNote, FuzzInput.note, Columns.Note.body, "called back"),
            CellWrite(.enquiry, FuzzInput.otherEnquiry, Columns.Enquiry.branch, "richmond"),
            CellWrite(.enquiry, FuzzInput.otherEnquiry, Columns.Enquiry.name, "Test Patient B"),
        ])
        terminal = try await Self.enroll(store: store, endpoint: endpoint, role: .terminal)
        editor = try await Self.enroll(store: store, endpoint: endpoint, role: .editor)
        // A concurrent write (base seq 0 against the server's value) leaves a conflict record to move, resolve and erase.
        let conflicting = SyncRequest(replica: terminal.replica, clock: HLC(milliseconds: Self.now, counter: 0), cursor: 0, changes: [
            PushedChange(counter: 1, change: Change(
                table: .enquiry, row: FuzzInput.enquiry, operation: .write(column: Columns.Enquiry.status, value: "contacted", baseSeq: 0),
                version: Version(hlc: HLC(milliseconds: Self.now, counter: 1), replica: terminal.replica))),
        ])
        let answer = await endpoint.handle(path: "/v1/sync", authorization: terminal.bearer, contentEncoding: "deflate",
                                           body: Deflate.compress(FrameCodec.encode(conflicting)))
        guard answer.status == 200 else { throw FuzzFinding("setup push answered \(answer.status)") }
        pristine = try DatabaseQueue()
        try store.writerForTools.backup(to: pristine)
    }

    private static func enroll(store: SQLiteServerStore, endpoint: SyncEndpoint<SQLiteServerStore>, role: DeviceRole) async throws -> Caller {
        let (_, code) = try await store.issueEnrollmentCode(branch: "harley-street", name: role.name, role: role)
        let body = Deflate.compress(FrameCodec.encode(EnrollRequest(code: code, deviceName: role.name)))
        let answer = await endpoint.handle(path: "/v1/enroll", authorization: nil, contentEncoding: "deflate", body: body)
        let enrolled = try FrameCodec.decode(try Deflate.decompress(answer.body), as: EnrollResponse.self)
        return Caller(replica: enrolled.replica, bearer: "Bearer \(enrolled.token)")
    }

    /// One fuzz input: up to three requests against the freshly restored store.
    package func check(_ bytes: [UInt8]) async throws {
        try pristine.backup(to: store.writerForTools)
        var input = FuzzInput(bytes)
        let steps = 1 + input.int(below: 3)
        for _ in 0..<steps {
            if input.byte() % 4 == 0 {
                try await sendArbitrary(&input)
            } else {
                try await sendStructured(&input)
            }
            if input.isExhausted { break }
        }
    }

    /// (i) An arbitrary body, with a good, missing or wrong token and encoding.
    private func sendArbitrary(_ input: inout FuzzInput) async throws {
        let authorization: String? = switch input.byte() % 8 {
        case 0: nil
        case 1: "Bearer cs1_not-a-token"
        case 2: "Bearer "
        case 3: editor.bearer
        default: terminal.bearer
        }
        let encoding: String? = input.byte() % 8 == 0 ? input.pick([nil, "gzip", "DEFLATE", "identity"]) : "deflate"
        let path = input.byte() % 8 == 0 ? "/v1/enroll" : "/v1/sync"
        let raw = input.take(input.int(below: 1 << 16))
        let body = input.bool() ? Deflate.compress(raw) : raw
        let answer = await endpoint.handle(path: path, authorization: authorization, contentEncoding: encoding, body: body)
        try Self.verify(answer, path: path)
    }

    /// (ii) A sync_request built field by field from the input, deflated, with a device's token.
    private func sendStructured(_ input: inout FuzzInput) async throws {
        let who = input.byte() % 4
        let caller = who == 2 ? editor : terminal
        let replica = who == 3 ? ReplicaID(input.interestingUInt64()) : caller.replica
        let clock = input.clock(near: HLC(milliseconds: Self.now, counter: 0))
        var request = SyncRequest(replica: replica, clock: clock, cursor: input.interestingUInt64(),
                                  pageLimit: UInt32(truncatingIfNeeded: input.interestingUInt64(small: 8)))
        var counter = input.interestingUInt64(small: 8)
        var hlc = clock
        if input.byte() % 64 == 1 {
            // One change more than a push may hold (413 too_many_changes): small ones, the count is what matters.
            let change = Change(table: .enquiry, row: FuzzInput.enquiry, operation: .write(column: Columns.Enquiry.status, value: "new", baseSeq: 0),
                                version: Version(hlc: hlc, replica: replica))
            request.changes = (0...UInt64(SyncLimits().maxChangesPerPush)).map { PushedChange(counter: counter &+ $0, change: change) }
        }
        for index in 0..<(request.changes.isEmpty ? input.int(below: 12) : 0) {
            if index > 0 { counter &+= input.byte() % 16 == 0 ? input.interestingUInt64() : 1 }
            hlc = input.bool() ? hlc : input.clock(near: hlc)
            let change = input.change(at: Version(hlc: hlc, replica: replica), sameRowAs: request.changes.last?.change)
            request.changes.append(PushedChange(counter: counter, change: change))
        }
        var frame = FrameCodec.encode(request)
        if input.byte() % 8 == 0 {
            // One corrupted byte inside an otherwise valid frame reaches every decoding error deep in the frame.
            frame[input.int(below: frame.count)] = input.byte()
        }
        let body = Deflate.compress(frame)
        let answer = await endpoint.handle(path: "/v1/sync", authorization: caller.bearer, contentEncoding: "deflate", body: body)
        try Self.verify(answer, path: "/v1/sync")
        guard answer.status == 200, input.bool() else { return }
        // Invariant 4: the same push again (its answer lost) changes nothing and gets the same answer.
        let before = try await state()
        let replayed = await endpoint.handle(path: "/v1/sync", authorization: caller.bearer, contentEncoding: "deflate", body: body)
        try Self.verify(replayed, path: "/v1/sync")
        guard replayed == answer else { throw FuzzFinding("a replayed push got a different answer (\(replayed.status))") }
        guard try await state() == before else { throw FuzzFinding("a replayed push changed the store") }
    }

    /// What a replayed push must leave alone: the change log, exits, seq and clock high-water marks.
    private func state() async throws -> [Int64] {
        try await store.writerForTools.read { db in
            try Row.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM sync_cell), (SELECT coalesce(max(seq), 0) FROM sync_cell),
                    (SELECT coalesce(sum(hlc % 1000003), 0) FROM sync_cell), (SELECT count(*) FROM sync_exit),
                    (SELECT coalesce(value, 0) FROM sync_meta WHERE key = 'last_seq'),
                    (SELECT coalesce(value, 0) FROM sync_meta WHERE key = 'last_hlc'),
                    (SELECT count(*) FROM sync_rejection)
                """).map { row in (0..<7).map { row[$0] as Int64? ?? -1 } } ?? []
        }
    }

    /// A response, never a trap or a 500: a problem with a 4xx and a stable code, or a frame our own decoder accepts.
    static func verify(_ answer: EndpointResponse, path: String) throws {
        switch answer.status {
        case 200:
            guard answer.contentEncoding == "deflate" else { throw FuzzFinding("a 200 without Content-Encoding: deflate") }
            do {
                let frame = try FrameCodec.decode(try Deflate.decompress(answer.body, limits: InflateLimits(
                    maxCompressedBytes: 64 << 20, maxInflatedBytes: 64 << 20, maxRatio: .max)))
                switch (path, frame) {
                case ("/v1/sync", .syncResponse), ("/v1/enroll", .enrollResponse): break
                default: throw FuzzFinding("\(path) answered with another frame type")
                }
            } catch let finding as FuzzFinding {
                throw finding
            } catch {
                throw FuzzFinding("the server sent a frame its own decoder refuses: \(error)")
            }
        case 400..<500:
            struct Problem: Decodable { var code: String; var status: Int }
            guard answer.contentType == "application/problem+json",
                  let problem = try? JSONDecoder().decode(Problem.self, from: Data(answer.body)), problem.status == answer.status
            else { throw FuzzFinding("a \(answer.status) that is not a problem+json") }
        default:
            let code = (try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])?["code"] as? String
            throw FuzzFinding("the endpoint answered \(answer.status) \(code ?? "?")")
        }
    }
}

/// A seeded, shareable source of random bits for the store and endpoint.
final class SeededSource: @unchecked Sendable {
    private let lock = NSLock()
    private var generator: SplitMix64

    init(seed: UInt64) {
        generator = SplitMix64(seed: seed)
    }

    var source: RandomSource {
        RandomSource { [self] in lock.withLock { generator.next() } }
    }
}
