import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SyncCore
@testable import SyncServer

import Testing

@Suite("Sync server")
struct SyncServerTests {
    let enquiryA = "0a1b2c3d-0000-4000-8000-00000000000a"
    let enquiryB = "0a1b2c3d-0000-4000-8000-00000000000b"

    func newEnquiry(_ device: inout TestDevice, _ id: String, branch: String, wall: UInt64, message: String = "Sciatica since May") -> [PushedChange] {
        device.write(.enquiry, id, [
            (Columns.Enquiry.branch, .text(branch)), (Columns.Enquiry.name, "Test Patient"),
            (Columns.Enquiry.message, .text(message)), (Columns.Enquiry.status, "new"),
        ], wall: wall)
    }

    @Test func enrollmentIssuesATokenOnceAndTheServerKeepsOnlyItsHash() async throws {
        let server = try await TestServer()
        let code = try await server.issueCode(branch: "harley-street")
        try await server.app.test(.router) { client in
            let response = try await client.enroll(code: code.lowercased())
            #expect(response.status == .ok)
            let enrolled = try Wire.frame(response, as: EnrollResponse.self)
            #expect(enrolled.branch == "harley-street")
            #expect(enrolled.role == .terminal)
            #expect(enrolled.token.hasPrefix("cs1_"))
            let again = try await client.enroll(code: code)
            #expect(again.status == .unauthorized)
            #expect(try Wire.problem(again).code == "invalid_enrollment_code")
        }
        let devices = try await server.store.devices()
        #expect(devices.count == 1)
        let stored = try await server.store.writer.read { db in try String.fetchAll(db, sql: "SELECT token_hash FROM device") }
        #expect(stored.allSatisfy { $0.count == 64 }, "only the SHA-256 hex is stored")
    }

    @Test func pullIsScopedToTheDevicesBranch() async throws {
        let server = try await TestServer()
        try await server.store.write([CellWrite(.content, "manual-therapy", Columns.Content.title, "Manual Therapy")])
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            var richmond = try await client.enrolledDevice(server, branch: "richmond")
            _ = try await client.syncOK(harley.request(newEnquiry(&harley, enquiryA, branch: "harley-street", wall: server.clock.milliseconds())), token: harley.token)
            _ = try await client.syncOK(richmond.request(newEnquiry(&richmond, enquiryB, branch: "richmond", wall: server.clock.milliseconds())), token: richmond.token)
            let note = richmond.write(.enquiryNote, "note-r1", [(Columns.Note.enquiry, .text(enquiryB)), (Columns.Note.body, "Called back")], wall: server.clock.milliseconds())
            _ = try await client.syncOK(richmond.request(note), token: richmond.token)

            let harleyRows = Set(try await client.pullAll(harley).changes.map(\.change.row))
            #expect(harleyRows.contains(enquiryA))
            #expect(harleyRows.contains("manual-therapy"))
            #expect(harleyRows.contains("harley-street") && harleyRows.contains("richmond"), "branches are for everyone")
            #expect(!harleyRows.contains(enquiryB), "another branch's enquiry never reaches this device")
            #expect(!harleyRows.contains("note-r1"), "nor its notes")
            let richmondRows = Set(try await client.pullAll(richmond).changes.map(\.change.row))
            #expect(richmondRows.isSuperset(of: [enquiryB, "note-r1", "manual-therapy"]))
            #expect(!richmondRows.contains(enquiryA))
        }
    }

    @Test func pullPagesInSeqOrderWithoutGapsOrDuplicates() async throws {
        let server = try await TestServer()
        try await server.store.write((0..<25).map { CellWrite(.content, "page-\($0)", Columns.Content.title, .text("Page \($0)")) })
        try await server.app.test(.router) { client in
            let device = try await client.enrolledDevice(server, branch: "harley-street")
            let paged = try await client.pullAll(device, pageLimit: 4)
            let whole = try await client.pullAll(device, pageLimit: 1000)
            #expect(paged.changes == whole.changes)
            #expect(paged.changes.map(\.seq) == paged.changes.map(\.seq).sorted())
            #expect(Set(paged.changes.map(\.seq)).count == paged.changes.count)
            #expect(paged.changes.filter { $0.change.table == .content }.count == 25)
            let nothingNew = try await client.syncOK(device.request(cursor: whole.cursor), token: device.token)
            #expect(nothingNew.changes.isEmpty && !nothingNew.more)
        }
    }

    @Test func aReplayedPushChangesNothing() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let request = device.request(newEnquiry(&device, enquiryA, branch: "harley-street", wall: server.clock.milliseconds()))
            let first = try await client.syncOK(request, token: device.token)
            let before = try await server.store.writer.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'last_seq'") }
            let replay = try await client.syncOK(request, token: device.token)
            let after = try await server.store.writer.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'last_seq'") }
            #expect(first.acknowledged == 4 && replay.acknowledged == 4)
            #expect(before == after, "a replay allocates no seq and writes no cell")
            let cells = try await server.store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_cell WHERE tbl = 3")! }
            #expect(cells == 4)
        }
    }

    @Test func concurrentWritesToOneCellRecordOneConflictWithBothValues() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var a = try await client.enrolledDevice(server, branch: "harley-street")
            var b = try await client.enrolledDevice(server, branch: "harley-street")
            _ = try await client.syncOK(a.request(newEnquiry(&a, enquiryA, branch: "harley-street", wall: server.clock.milliseconds())), token: a.token)
            let seen = try await client.pullAll(b)
            let statusSeq = seen.changes.first { $0.change.row == enquiryA && $0.change.column == Columns.Enquiry.status }!.seq
            server.clock.advance(1000)
            // Both edit the status having seen the same version.
            let editA = a.write(.enquiry, enquiryA, [(Columns.Enquiry.status, "booked")], baseSeq: statusSeq, wall: server.clock.milliseconds())
            let editB = b.write(.enquiry, enquiryA, [(Columns.Enquiry.status, "closed")], baseSeq: statusSeq, wall: server.clock.milliseconds() + 5)
            _ = try await client.syncOK(a.request(editA), token: a.token)
            _ = try await client.syncOK(b.request(editB), token: b.token)

            let conflicts = try await server.store.conflicts(includeResolved: true)
            #expect(conflicts.count == 1)
            let row = try await server.store.writer.read { db in
                try Row.fetchOne(db, sql: "SELECT winner_value, loser_value, winner_replica, loser_replica, column_name, branch FROM sync_conflict")!
                    .databaseValues.map { String.fromDatabaseValue($0) ?? "" }
            }
            #expect(row == ["closed", "booked", b.replica.description, a.replica.description, "status", "harley-street"])
            let status = try await server.store.writer.read { db in try String.fetchOne(db, sql: "SELECT status FROM enquiry") }
            #expect(status == "closed")

            // A sequential edit (having seen the winner) is no conflict, and resolves the recorded one.
            let latest = try await client.pullAll(a).changes.last { $0.change.row == enquiryA && $0.change.column == Columns.Enquiry.status }!
            server.clock.advance(1000)
            let fix = a.write(.enquiry, enquiryA, [(Columns.Enquiry.status, "booked")], baseSeq: latest.seq, wall: server.clock.milliseconds())
            _ = try await client.syncOK(a.request(fix), token: a.token)
            #expect(try await server.store.conflicts(includeResolved: true).count == 1)
            #expect(try await server.store.conflicts(includeResolved: false).isEmpty)
        }
    }

    @Test func anOutOfScopeChangeIsRejectedAloneAndTheRestAccepted() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            var changes = newEnquiry(&harley, enquiryA, branch: "harley-street", wall: server.clock.milliseconds())
            changes += newEnquiry(&harley, enquiryB, branch: "richmond", wall: server.clock.milliseconds())
            changes += harley.write(.content, "manual-therapy", [(Columns.Content.title, "Hacked")], wall: server.clock.milliseconds())
            changes += harley.write(.enquiry, "c0ffee00-0000-4000-8000-000000000000", [(Columns.Enquiry.status, "nonsense")], wall: server.clock.milliseconds())
            let response = try await client.syncOK(harley.request(changes), token: harley.token)
            #expect(response.acknowledged == changes.last!.counter)
            let byReason = Dictionary(grouping: response.rejected, by: \.reason).mapValues(\.count)
            #expect(byReason[.outOfScope] == 4, "every cell of the other branch's enquiry")
            #expect(byReason[.forbidden] == 1, "terminals do not edit content")
            #expect(byReason[.invalid] == 1, "a status outside the allowed set")
            let stored = try await server.store.writer.read { db in try String.fetchAll(db, sql: "SELECT id FROM enquiry") }
            #expect(stored == [enquiryA])
            let metrics = server.metrics.registry.emitToString()
            for (reason, count) in [("out_of_scope", 4), ("forbidden", 1), ("invalid", 1)] {
                #expect(metrics.contains(#"clinicsync_changes_rejected_total{reason="\#(reason)"} \#(count)"#), "\(metrics)")
            }
        }
    }

    @Test func aVersionBeyondMaxDriftIsRefusedWithTheDriftNamed() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let changes = newEnquiry(&device, enquiryA, branch: "harley-street", wall: server.clock.milliseconds() + 3_600_000)
            let response = try await client.sync(device.request(changes), token: device.token)
            #expect(response.status == .unprocessableContent)
            let problem = try Wire.problem(response)
            #expect(problem.code == "clock_drift")
            #expect(problem.detail.contains("1h 0m ahead"), "\(problem.detail)")
            let stored = try await server.store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM enquiry")! }
            #expect(stored == 0)
        }
    }

    @Test func hostileRequestsGetSpecificProblemsAndTheServerKeepsServing() async throws {
        var limits = SyncLimits()
        limits.inflate.maxCompressedBytes = 64 << 10
        let server = try await TestServer(limits: limits)
        try await server.app.test(.live) { client in
            let device = try await client.enrolledDevice(server, branch: "harley-street")
            let revokedDevice = try await client.enrolledDevice(server, branch: "harley-street")
            _ = try await server.store.revokeDevice(id: try await server.store.devices().first { $0.replica == revokedDevice.replica }!.id)
            let good = FrameCodec.encode(device.request())
            var newer = good
            newer[4] = 9
            let bomb = Deflate.compress([UInt8](repeating: 0, count: 8 << 20))
            let cases: [(String, HTTPFields, ByteBuffer, HTTPResponse.Status, String)] = [
                ("garbage", Wire.headers(token: device.token), ByteBuffer(string: "hello, not a frame"), .badRequest, "bad_compression"),
                ("garbage frame", Wire.headers(token: device.token), Wire.body(Array("hello, not a frame".utf8)), .badRequest, "not_a_frame"),
                ("truncated", Wire.headers(token: device.token), Wire.body(Array(good.dropLast(3))), .badRequest, "truncated_frame"),
                ("bomb", Wire.headers(token: device.token), ByteBuffer(bytes: bomb), .badRequest, "compression_ratio_exceeded"),
                ("oversize", Wire.headers(token: device.token), ByteBuffer(bytes: (0..<(100 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7919) }), .contentTooLarge, "body_too_large"),
                ("newer version", Wire.headers(token: device.token), Wire.body(newer), .badRequest, "unsupported_version"),
                ("wrong type", Wire.headers(token: device.token), Wire.body(FrameCodec.encode(EnrollRequest(code: "x", deviceName: "y"))), .badRequest, "wrong_frame_type"),
                ("missing token", Wire.headers(token: nil), Wire.body(good), .unauthorized, "missing_token"),
                ("unknown token", Wire.headers(token: "cs1_nope"), Wire.body(good), .unauthorized, "unknown_token"),
                ("revoked token", Wire.headers(token: revokedDevice.token), Wire.body(FrameCodec.encode(revokedDevice.request())), .unauthorized, "revoked_token"),
                ("identity body", [.authorization: "Bearer \(device.token)"], ByteBuffer(bytes: good), .unsupportedMediaType, "unsupported_encoding"),
            ]
            for (name, headers, body, status, code) in cases {
                let response = try await client.execute(uri: "/v1/sync", method: .post, headers: headers, body: body)
                #expect(response.status == status, "\(name)")
                #expect(response.headers[.contentType] == "application/problem+json", "\(name)")
                #expect((try? Wire.problem(response).code) == code, "\(name): \(String(buffer: response.body))")
                // The server answers the next good request.
                let next = try await client.sync(device.request(), token: device.token)
                #expect(next.status == .ok, "after \(name)")
            }
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            let text = String(buffer: metrics.body)
            #expect(text.contains(#"clinicsync_http_requests_total{route="/v1/sync",status="401"} 3"#), "\(text)")
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(try JSONDecoder().decode(Health.self, from: Data(health.body.readableBytesView)).status == "ok")
        }
    }

    /// Invariant 11: integers at their limits are refused where they are decoded, and the process lives on.
    @Test func integersBeyondTheProtocolsBoundsAre400AndTheServerKeepsServing() async throws {
        let server = try await TestServer()
        try await server.app.test(.live) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let wall = server.clock.milliseconds()
            let one = device.write(.enquiry, UUID().uuidString.lowercased(), [(Columns.Enquiry.branch, .text("harley-street"))], wall: wall)
            func withCounter(_ counter: UInt64) -> [PushedChange] { one.map { PushedChange(counter: counter, change: $0.change) } }
            func withBaseSeq(_ baseSeq: UInt64) -> [PushedChange] {
                one.map { PushedChange(counter: $0.counter, change: Change(table: $0.change.table, row: $0.change.row,
                    operation: .write(column: Columns.Enquiry.branch, value: .text("harley-street"), baseSeq: baseSeq), version: $0.change.version)) }
            }
            func withValue(_ value: Value) -> [PushedChange] {
                one.map { PushedChange(counter: $0.counter, change: Change(table: .enquiry, row: $0.change.row,
                    operation: .write(column: Columns.Enquiry.message, value: value, baseSeq: 0), version: $0.change.version)) }
            }
            var farClock = device.request()
            farClock.clock = HLC(rawValue: 1 << 63)
            let cases: [(String, SyncRequest)] = [
                ("cursor 2^63", device.request(cursor: 1 << 63)),
                ("cursor 2^64-1", device.request(cursor: .max)),
                ("counter 2^63", device.request(withCounter(1 << 63))),
                ("counter 2^64-1", device.request(withCounter(.max))),
                ("base seq 2^64-1", device.request(withBaseSeq(.max))),
                ("clock with the top bit set", farClock),
                ("NaN", device.request(withValue(.real(.nan)))),
                ("infinity", device.request(withValue(.real(-.infinity)))),
            ]
            for (name, request) in cases {
                let response = try await client.sync(request, token: device.token)
                #expect(response.status == .badRequest, "\(name)")
                #expect((try? Wire.problem(response).code) == "malformed_frame", "\(name): \(String(buffer: response.body))")
                let next = try await client.sync(device.request(), token: device.token)
                #expect(next.status == .ok, "after \(name)")
            }
            let stored = try await server.store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM enquiry")! }
            #expect(stored == 0)
            // The largest allowed values are accepted.
            let accepted = try await client.syncOK(device.request(withCounter(UInt64(Int64.max)), cursor: UInt64(Int64.max)), token: device.token)
            #expect(accepted.acknowledged == UInt64(Int64.max))
            #expect(accepted.rejected.isEmpty)
        }
    }

    @Test func erasingAnEnquiryRemovesEveryStoredValueAndPropagates() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var a = try await client.enrolledDevice(server, branch: "harley-street")
            var changes = newEnquiry(&a, enquiryA, branch: "harley-street", wall: server.clock.milliseconds(), message: "SECRET-SYMPTOM-TEXT")
            changes += a.write(.enquiryNote, "note-1", [(Columns.Note.enquiry, .text(enquiryA)), (Columns.Note.body, "SECRET-NOTE-TEXT")], wall: server.clock.milliseconds())
            _ = try await client.syncOK(a.request(changes), token: a.token)
            let before = try await client.pullAll(a)
            try await server.store.erase(.enquiry, row: enquiryA)
            let after = try await client.pullAll(a, after: before.cursor)
            #expect(after.changes.contains { $0.change.row == enquiryA && $0.change.operation == .erase })
            #expect(after.changes.contains { $0.change.row == "note-1" && $0.change.operation == .erase })
            let fresh = try await client.pullAll(a)
            #expect(!fresh.changes.contains { if case .write = $0.change.operation { $0.change.row == enquiryA } else { false } })
        }
        let file = try Data(contentsOf: URL(fileURLWithPath: server.directory + "/server.sqlite"))
        let wal = (try? Data(contentsOf: URL(fileURLWithPath: server.directory + "/server.sqlite-wal"))) ?? Data()
        for secret in ["SECRET-SYMPTOM-TEXT", "SECRET-NOTE-TEXT"] {
            #expect(file.range(of: Data(secret.utf8)) == nil, "\(secret) is gone from the database file")
            #expect(wal.range(of: Data(secret.utf8)) == nil, "\(secret) is gone from the WAL")
        }
    }

    @Test func anEnquiryMovedToAnotherBranchLeavesTheOldOne() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            let richmond = try await client.enrolledDevice(server, branch: "richmond")
            var editor = try await client.enrolledDevice(server, branch: "harley-street", role: .editor)
            _ = try await client.syncOK(harley.request(newEnquiry(&harley, enquiryA, branch: "harley-street", wall: server.clock.milliseconds())), token: harley.token)
            let harleyBefore = try await client.pullAll(harley)
            let richmondBefore = try await client.pullAll(richmond)
            #expect(!richmondBefore.changes.contains { $0.change.row == enquiryA })
            server.clock.advance(1000)
            let move = editor.write(.enquiry, enquiryA, [(Columns.Enquiry.branch, "richmond")], baseSeq: harleyBefore.cursor, wall: server.clock.milliseconds())
            _ = try await client.syncOK(editor.request(move), token: editor.token)
            let harleyAfter = try await client.pullAll(harley, after: harleyBefore.cursor)
            #expect(harleyAfter.exits.contains { $0.row == enquiryA })
            let richmondAfter = try await client.pullAll(richmond, after: richmondBefore.cursor)
            #expect(Set(richmondAfter.changes.filter { $0.change.row == enquiryA }.compactMap(\.change.column)).count == 4, "the whole row arrives")
        }
    }

    /// Moving many enquiries away leaves the old branch a window of exits and no cells: they come in
    /// pages of at most the page limit, every one exactly once, and the cursor always advances.
    @Test func exitsComeInBoundedPages() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            var editor = try await client.enrolledDevice(server, branch: "harley-street", role: .editor)
            let ids = (0..<25).map { String(format: "0a1b2c3d-0000-4000-8000-%012d", $0) }
            var changes: [PushedChange] = []
            for id in ids { changes += newEnquiry(&harley, id, branch: "harley-street", wall: server.clock.milliseconds()) }
            _ = try await client.syncOK(harley.request(changes), token: harley.token)
            let before = try await client.pullAll(harley)
            server.clock.advance(1000)
            var moves: [PushedChange] = []
            for id in ids { moves += editor.write(.enquiry, id, [(Columns.Enquiry.branch, "richmond")], baseSeq: before.cursor, wall: server.clock.milliseconds()) }
            _ = try await client.syncOK(editor.request(moves), token: editor.token)

            var cursor = before.cursor
            var exited: [String] = []
            var pages = 0
            while true {
                let page = try await client.syncOK(harley.request(cursor: cursor, pageLimit: 10), token: harley.token)
                pages += 1
                #expect(page.exits.count + page.changes.count <= 10, "page \(pages) holds \(page.exits.count) exits")
                #expect(page.cursor > cursor || !page.more, "a page that says more moves the cursor")
                #expect(page.exits.allSatisfy { $0.seq > cursor && $0.seq <= page.cursor })
                exited += page.exits.map(\.row)
                cursor = page.cursor
                if !page.more { break }
            }
            #expect(exited.sorted() == ids, "every exit once")
            #expect(pages >= 3)
        }
    }

    /// Row ids are bounded (SPEC 9): a longer or empty one is refused alone as `invalid`, and pages count its bytes.
    @Test func rowIDsLongerThanTheLimitAreRefusedAlone() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            let long = String(repeating: "x", count: Schema.maxRowIDBytes + 1)
            var changes = harley.write(.enquiry, long, [(Columns.Enquiry.branch, "harley-street")], wall: server.clock.milliseconds())
            changes += harley.write(.enquiry, "", [(Columns.Enquiry.branch, "harley-street")], wall: server.clock.milliseconds())
            changes += newEnquiry(&harley, enquiryA, branch: "harley-street", wall: server.clock.milliseconds())
            let response = try await client.syncOK(harley.request(changes), token: harley.token)
            #expect(response.acknowledged == changes.last!.counter)
            #expect(Set(response.rejected.map(\.counter)) == [1, 2])
            #expect(response.rejected.allSatisfy { $0.reason == .invalid })
            let stored = try await server.store.writer.read { db in try String.fetchAll(db, sql: "SELECT id FROM enquiry") }
            #expect(stored == [enquiryA])
        }
    }

    /// A delete of an enquiry the store never held (taken and deleted offline, or re-sent after a store
    /// restore that forgot the row) is kept as a tombstone in the writer's branch, not refused.
    @Test func aDeleteOfAnEnquiryTheServerNeverHeldIsKept() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            harley.counter += 1
            let delete = PushedChange(counter: harley.counter, change: Change(
                table: .enquiry, row: enquiryB, operation: .delete, version: Version(hlc: harley.clock.tick(wall: server.clock.milliseconds()), replica: harley.replica)))
            let response = try await client.syncOK(harley.request([delete]), token: harley.token)
            #expect(response.rejected.isEmpty)
            let scope = try await server.store.writer.read { db in
                try String.fetchOne(db, sql: "SELECT scope FROM sync_cell WHERE row = ? AND col = 0", arguments: [enquiryB])
            }
            #expect(scope == "harley-street")
            // A late copy of a write to it meets the tombstone instead of creating the row.
            let late = newEnquiry(&harley, enquiryB, branch: "harley-street", wall: server.clock.milliseconds() - 500)
            _ = try await client.syncOK(harley.request(late), token: harley.token)
            let live = try await server.store.writer.read { db in try String.fetchAll(db, sql: "SELECT id FROM enquiry") }
            #expect(live.isEmpty)
        }
    }

    /// SPEC 7.9: a device presenting a replica id the store never handed out, with changes acknowledged
    /// under it, was given that id after the store's backup: it is adopted (the device is not refused
    /// for good) and counts as proof of the restore. Without anything acknowledged it stays a 403.
    @Test func aReplicaIDGivenAfterTheBackupIsAdoptedWhenTheDeviceShowsAcknowledgedChanges() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            let harley = try await client.enrolledDevice(server, branch: "harley-street")
            let later = ReplicaID(harley.replica.rawValue &+ 7)
            let epochBefore = try await server.store.epoch()
            func sync(acknowledged: Int?) async throws -> TestResponse {
                var headers = Wire.headers(token: harley.token)
                if let acknowledged { headers[HTTPField.Name(ProtocolHeader.acknowledged)!] = String(acknowledged) }
                let request = SyncRequest(replica: later, clock: harley.clock.last, cursor: 0)
                return try await client.execute(uri: "/v1/sync", method: .post, headers: headers, body: Wire.body(FrameCodec.encode(request)))
            }
            let unproven = try await sync(acknowledged: nil)
            #expect(unproven.status == .forbidden)
            #expect(try Wire.problem(unproven).code == "replica_mismatch")
            let adopted = try await sync(acknowledged: 12)
            #expect(adopted.status == .ok)
            #expect(try await server.store.epoch() != epochBefore, "the store now knows it was restored")
            let stored = try await server.store.writer.read { db in try Int64.fetchOne(db, sql: "SELECT replica FROM device WHERE replica IS NOT NULL AND id = (SELECT device FROM device_replica WHERE replica = ?)", arguments: [later.databaseValue]) }
            #expect(stored == later.databaseValue)
            // The id it had before is now a former one: 7.8's answer, naming the adopted id.
            let former = try await client.sync(harley.request(), token: harley.token)
            #expect(former.status == .conflict)
        }
    }

    /// After a store restore the editor's re-sent move can reach the store before the row's creation,
    /// which only its author (a terminal of the branch the row left) holds. Its re-sent history fills
    /// the cells the row lacks; an ordinary write, or one to a cell already set, is still out of scope.
    @Test func reSentHistoryFillsTheCellsAMovedRowLacks() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            var editor = try await client.enrolledDevice(server, branch: "harley-street", role: .editor)
            let move = editor.write(.enquiry, enquiryA, [(Columns.Enquiry.branch, "richmond")], wall: server.clock.milliseconds())
            _ = try await client.syncOK(editor.request(move), token: editor.token)
            let ordinary = harley.write(.enquiry, enquiryA, [(Columns.Enquiry.name, "Test Patient")], wall: server.clock.milliseconds())
            let refused = try await client.syncOK(harley.request(ordinary), token: harley.token)
            #expect(refused.rejected.map(\.reason) == [.outOfScope])
            // Before any restore, a base seq of 2^63 − 1 is no re-sent history: out of scope as well.
            let early = harley.write(.enquiry, enquiryA, [(Columns.Enquiry.topic, "posture")], baseSeq: UInt64(Int64.max), wall: server.clock.milliseconds())
            #expect(try await client.syncOK(harley.request(early), token: harley.token).rejected.map(\.reason) == [.outOfScope])
            _ = try await server.store.markRestored()
            let history = harley.write(.enquiry, enquiryA, [
                (Columns.Enquiry.branch, "harley-street"), (Columns.Enquiry.name, "Test Patient"),
                (Columns.Enquiry.createdAt, "2026-11-29T10:00:00Z"), (Columns.Enquiry.status, "new"),
            ], baseSeq: UInt64(Int64.max), wall: server.clock.milliseconds())
            let filled = try await client.syncOK(harley.request(history), token: harley.token)
            #expect(filled.rejected.map(\.counter) == [history[0].counter], "only the branch cell, which the move already set")
            let row: [String?] = try await server.store.writer.read { db in
                let row = try Row.fetchOne(db, sql: "SELECT branch, name, status FROM enquiry WHERE id = ?", arguments: [enquiryA])
                return [row?["branch"], row?["name"], row?["status"]]
            }
            #expect(row == ["richmond", "Test Patient", "new"])
        }
    }

    /// A file restored from an older copy of itself re-sends a change the server refused in the lost
    /// future, after the lost future had moved past it: the replay reports the rejection again (the
    /// change is dead-lettered), instead of an acknowledgement that makes it look stored.
    @Test func aReplayedRejectedChangeIsReportedAgainAfterLaterPushes() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var harley = try await client.enrolledDevice(server, branch: "harley-street")
            let refused = harley.write(.enquiry, enquiryB, [(Columns.Enquiry.branch, "richmond")], wall: server.clock.milliseconds())
            let first = try await client.syncOK(harley.request(refused), token: harley.token)
            #expect(first.rejected.map(\.counter) == [refused[0].counter])
            let later = newEnquiry(&harley, enquiryA, branch: "harley-street", wall: server.clock.milliseconds())
            _ = try await client.syncOK(harley.request(later), token: harley.token)
            let replay = try await client.syncOK(harley.request(refused), token: harley.token)
            #expect(replay.rejected.map(\.counter) == [refused[0].counter])
            #expect(replay.rejected.first?.reason == .outOfScope)
        }
    }
}
