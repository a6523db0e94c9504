import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import Testing

/// Token rotation (issue 13, SPEC 8.2): the terminal gets a new token in a sync answer; the old one
/// works until the new one is first used, so a lost answer locks nobody out, and then never again.
@Suite("Token rotation")
struct TokenRotationTests {
    static func token(_ replica: Replica) throws -> String {
        try replica.writer.read { db in try String.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'device_token'") ?? "" }
    }

    /// A bare sync request under `token`: its status.
    static func status(with token: String, replica: Replica, harness: Harness) async throws -> Int {
        let identity = try #require(try replica.identity())
        let frame = FrameCodec.encode(SyncRequest(replica: identity.replica, clock: HLC(rawValue: 1), cursor: 0, pageLimit: 10, changes: []))
        return try await HTTPTransport(baseURL: harness.url).post("/v1/sync", body: Deflate.compress(frame), token: token).status
    }

    @Test func aTerminalRotatesItsTokenAndTheOldOneStopsWorking() async throws {
        try await Harness.run { harness in
            let t = try await harness.terminal("t")
            let old = try Self.token(t.replica)
            try t.replica.requestTokenRotation()
            _ = try t.replica.enquiries.add(RollbackTests.enquiry(1))
            try await t.sync()
            let new = try Self.token(t.replica)
            #expect(new != old && !new.isEmpty)
            // The same cycle used the new token already (its pull after the push): the old one is gone.
            #expect(try await Self.status(with: old, replica: t.replica, harness: harness) == 401)
            #expect(try await Self.status(with: new, replica: t.replica, harness: harness) == 200)
            try await t.sync()
            #expect(try Self.token(t.replica) == new, "asked once, rotated once")
            let events = try await harness.store.auditEvents().map(\.kind)
            #expect(events.contains("token_rotated"))
        }
    }

    @Test func anAnswerWithTheNewTokenCanBeLostAndTheOldTokenStillWorks() async throws {
        try await Harness.run { harness in
            let t = try await harness.terminal("t")
            let device = try #require(try await harness.store.devices().first)
            #expect(try await harness.store.requestTokenRotation(id: device.id).rotateRequested)
            let old = try Self.token(t.replica)
            // The server hands out a new token, but the answer never reaches the terminal.
            #expect(try await Self.status(with: old, replica: t.replica, harness: harness) == 200)
            #expect(try await Self.status(with: old, replica: t.replica, harness: harness) == 200, "the old token still works")
            try await t.sync()
            let new = try Self.token(t.replica)
            #expect(new != old)
            #expect(try await Self.status(with: old, replica: t.replica, harness: harness) == 401)
            #expect(try await harness.store.devices().first?.rotateRequested == false)
        }
    }
}
