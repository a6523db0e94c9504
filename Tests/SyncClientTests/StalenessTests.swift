import Foundation
import SyncClient
import SyncCore
import SyncServer
import Testing
@testable import ClinicSyncCLI

/// One identity everywhere and staleness made visible (issue 14, items 5 and 6).
@Suite("Identity and staleness")
struct StalenessTests {
    @Test func enrollKeepsTheAdminsNameAndJSONNamesTheRole() async throws {
        try await Harness.run { harness in
            let (device, code) = try await harness.store.issueEnrollmentCode(branch: "harley-street", name: "reception-1", role: .terminal)
            let path = harness.directory + "/reception-1.sqlite"
            try await CLIContractTests.run(["terminal", "enroll", "--db", path, "--server", harness.url, "--code", code])
            let listed = try #require(try await harness.store.devices().first { $0.id == device.id })
            #expect(listed.name == "reception-1", "enroll renamed the device to \(listed.name)")
            let identity = try #require(try Replica.open(at: path, creating: false).identity())
            #expect(listed.replica == identity.replica, "the device list shows the replica id the terminal shows")

            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let deviceJSON = String(decoding: try encoder.encode(listed), as: UTF8.self)
            #expect(deviceJSON.contains(#""role":"terminal""#) && deviceJSON.contains(#""replica":"\#(identity.replica)""#), "\(deviceJSON)")
            let identityJSON = try encoder.encode(identity)
            #expect(String(decoding: identityJSON, as: UTF8.self).contains(#""role":"terminal""#))
            #expect(try JSONDecoder().decode(ReplicaIdentity.self, from: identityJSON) == identity)
        }
    }

    @Test func statusShowsTheLastFailureAndTheDeviceListAStaleFlag() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            try await a.engine.syncRecordingOutcome()
            try a.replica.enquiries.add(NewEnquiry(name: "Test Patient", phone: "020 7946 0000"))
            let port = try OperatorErrorTests.closedPort()
            let cutOff = SyncEngine(replica: a.replica, transport: HTTPTransport(baseURL: "http://127.0.0.1:\(port)"))
            await #expect(throws: SyncError.self) { try await cutOff.syncRecordingOutcome() }

            let status = try a.replica.status()
            #expect(status.lastSyncAt != nil && status.lastFailureAt != nil && status.lastFailureAt! >= status.lastSyncAt!)
            #expect(status.lastFailure == "offline: connection refused by 127.0.0.1:\(port) (is the server running?)")
            #expect(status.pendingRows == 1 && status.pendingChanges > 1)
            let lines = TerminalCommand.Status.render(status)
            #expect(lines.contains { $0.hasPrefix("last failure") && $0.contains("connection refused") }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("pending") && $0.contains("in 1 row") }, "\(lines)")
            #expect(lines.contains("daemon       never ran on this file"))

            // Two hours later without a sync, the device list says so.
            let devices = try await harness.store.devices()
            let later = AdminCommand.DeviceCommand.List.listing(devices, now: Date().addingTimeInterval(7_200), staleAfter: 3_600)
            #expect(later.allSatisfy { $0.stale && $0.state == "STALE" })
            let now = AdminCommand.DeviceCommand.List.listing(devices, now: Date(), staleAfter: 3_600)
            #expect(now.allSatisfy { !$0.stale && $0.state == "enrolled" })
            #expect(AdminCommand.DeviceCommand.List.table(later, now: Date().addingTimeInterval(7_200)).contains("STALE"))
        }
    }

    @Test func aRevokedDeviceCanBeRemovedAnActiveOneCannot() async throws {
        try await Harness.run { harness in
            _ = try await harness.terminal("a")
            let device = try #require(try await harness.store.devices().first)
            await #expect(throws: StoreError.self) { _ = try await harness.store.removeDevice(id: device.id) }
            _ = try await harness.store.revokeDevice(id: device.id)
            _ = try await harness.store.removeDevice(id: device.id)
            #expect(try await harness.store.devices().isEmpty)
        }
    }

    @Test func aReplicaRepointedAtItsMovedServerKeepsItsOutbox() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let id = try a.replica.enquiries.add(NewEnquiry(name: "Test Patient", phone: "020 7946 0000"))
            let port = try OperatorErrorTests.closedPort()
            try await CLIContractTests.run(["terminal", "repoint", "--db", a.replica.path, "--server", "http://127.0.0.1:\(port)"])
            let moved = SyncEngine(replica: a.replica, transport: HTTPTransport(baseURL: try #require(try a.replica.identity()).server))
            let error = await #expect(throws: SyncError.self) { try await moved.sync() }
            #expect(error?.detail.contains("127.0.0.1:\(port)") == true)
            #expect(await CLIContractTests.failure(["terminal", "repoint", "--db", a.replica.path, "--server", "10.0.0.6:8080"]) != nil)

            try await CLIContractTests.run(["terminal", "repoint", "--db", a.replica.path, "--server", harness.url])
            #expect(try a.replica.status().pendingChanges > 0, "repointing kept the outbox")
            try await CLIContractTests.run(["terminal", "sync", "--db", a.replica.path])
            #expect(try a.replica.status().pendingChanges == 0)
            let b = try await harness.terminal("b")
            try await b.sync()
            #expect(try b.replica.enquiries.get(id) != nil)
        }
    }
}
