import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import Testing

/// `admin device move` (issue 13): a terminal that moves branch keeps nothing of the old one — no
/// text in any of its files — reads the new one whole, and loses nothing it wrote before the move.
@Suite("Device moves")
struct DeviceMoveTests {
    static func files(of replica: Replica) -> [String] {
        ["", "-wal", "-shm"].map { replica.path + $0 }
    }

    @Test func aMovedTerminalHoldsNoTraceOfItsOldBranchAndReadsTheNewOne() async throws {
        try await Harness.run { harness in
            let moving = try await harness.terminal("moving")
            let harley = try await harness.terminal("harley")
            let richmond = try await harness.terminal("richmond", branch: "richmond")
            let canary = "Canary \(UUID().uuidString)"
            var enquiry = RollbackTests.enquiry(1)
            enquiry.message = canary
            let old = try moving.replica.enquiries.add(enquiry)
            _ = try moving.replica.enquiries.addNote(to: old, body: canary + " note")
            try await moving.sync()
            let there = try richmond.replica.enquiries.add(RollbackTests.enquiry(2))
            try await richmond.sync()

            let device = try #require(try await harness.store.devices().first { $0.name == "moving" })
            #expect(try await harness.store.moveDevice(id: device.id, to: "richmond").movingTo == "richmond")
            // Written before its next sync: stored in its old branch before the move takes effect.
            let lastAtHarley = try moving.replica.enquiries.add(RollbackTests.enquiry(3))
            try await moving.sync()
            try await moving.sync()

            #expect(try moving.replica.identity()?.branch == "richmond")
            #expect(Set(try moving.replica.enquiries.list().map(\.id)) == [there])
            #expect(try moving.replica.status().pendingChanges == 0 && moving.replica.deadLetters().isEmpty)
            for path in Self.files(of: moving.replica) {
                let bytes = FileManager.default.contents(atPath: path) ?? Data()
                #expect(bytes.range(of: Data(canary.utf8)) == nil, "old branch text in \(path)")
            }
            try await harley.sync()
            #expect(Set(try harley.replica.enquiries.list().map(\.id)) == [old, lastAtHarley], "nothing written before the move is lost")

            // At its new branch it works as any terminal there.
            let new = try moving.replica.enquiries.add(RollbackTests.enquiry(4))
            try await moving.sync()
            try await richmond.sync()
            #expect(Set(try richmond.replica.enquiries.list().map(\.id)) == [there, new])
            let moved = try #require(try await harness.store.devices().first { $0.id == device.id })
            #expect(moved.branch == "richmond" && moved.movingTo == nil)
            #expect(moved.appVersion == BuildInfo.version && moved.pending == 0)

            let audit = try await harness.store.auditEvents(device: device.id).map(\.kind)
            #expect(audit.contains("device_enrolled") && audit.contains("device_move_requested") && audit.contains("device_moved") && audit.contains("sync"))
        }
    }

    @Test func aMoveToAnUnknownBranchOrOfARevokedDeviceIsRefused() async throws {
        try await Harness.run { harness in
            _ = try await harness.terminal("t")
            let device = try #require(try await harness.store.devices().first)
            let unknown = await #expect(throws: StoreError.self) { try await harness.store.moveDevice(id: device.id, to: "nowhere") }
            #expect(unknown?.code == .unknownBranch)
            _ = try await harness.store.revokeDevice(id: device.id)
            await #expect(throws: StoreError.self) { try await harness.store.moveDevice(id: device.id, to: "richmond") }
        }
    }

    /// The audit log records who did what, never patient text.
    @Test func theAuditLogHoldsIdsAndCountsNotText() async throws {
        try await Harness.run { harness in
            let t = try await harness.terminal("t")
            let secret = "Secret \(UUID().uuidString)"
            var enquiry = RollbackTests.enquiry(1)
            enquiry.name = secret
            let id = try t.replica.enquiries.add(enquiry)
            try await t.sync()
            #expect(try await harness.store.eraseHeld(.enquiry, row: id) == .erased)
            let events = try await harness.store.auditEvents()
            #expect(events.map(\.kind).contains("enquiry_erased"))
            #expect(events.first { $0.kind == "sync" }?.detail["accepted"].flatMap(Int.init) ?? 0 > 0)
            let text = String(decoding: try JSONEncoder().encode(events), as: UTF8.self)
            #expect(!text.contains(secret))
        }
    }
}
