import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import SyncCore
import TestSupport
import Testing
@testable import SyncServer

/// A full disk, a store deleted or replaced under the running server, a store that cannot be opened
/// for writing (issue 14 item 11, issue 10 item 8): each is said as what it is, never as an internal error.
@Suite("Store health")
struct StoreHealthTests {
    static func health(_ client: some TestClientProtocol) async throws -> (HTTPResponse.Status, Health) {
        let response = try await client.execute(uri: "/healthz", method: .get)
        return (response.status, try JSONDecoder().decode(Health.self, from: Data(response.body.readableBytesView)))
    }

    static func newEnquiry(_ device: inout TestDevice, _ id: String, wall: UInt64, message: String = "Sciatica since May") -> [PushedChange] {
        device.write(.enquiry, id, [(Columns.Enquiry.branch, .text(device.branch)), (Columns.Enquiry.name, "Test Patient"),
                                    (Columns.Enquiry.message, .text(message))], wall: wall)
    }

    /// `PRAGMA max_page_count` makes SQLite answer SQLITE_FULL exactly as a full disk does, anywhere.
    @Test func aFullStoreRefusesPushesWith507StorageFullAndHealthzSaysSoUntilThereIsRoom() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let pages = try await server.store.writer.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
            try await server.store.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)") }
            let push = Self.newEnquiry(&device, "e-full", wall: server.clock.milliseconds(), message: String(repeating: "back pain, ", count: 800))
            let refused = try await client.sync(device.request(push), token: device.token)
            #expect(refused.status.code == 507)
            #expect(try Wire.problem(refused).code == "storage_full")
            var (status, health) = try await Self.health(client)
            #expect(status == .serviceUnavailable && health.status == "unhealthy" && health.problem == "storage_full", "\(health)")

            try await server.store.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
            (status, health) = try await Self.health(client)
            #expect(status == .ok && health.problem == nil, "room again: \(health)")
            let stored = try await client.syncOK(device.request(push), token: device.token)
            #expect(stored.acknowledged == push.last!.counter && stored.rejected.isEmpty)
            let metrics = server.metrics.registry.emitToString()
            #expect(metrics.contains(#"clinicsync_problems_total{code="storage_full"} 1"#), "\(metrics)")
        }
    }

    /// A real full disk (a tmpfs filled to the last byte): pulls still answer, even when the device's
    /// last-seen time is due to be written; pushes and `/healthz` say the storage is full.
    @Test(.enabled(if: TinyDisk.isAvailable, "mounting a tmpfs needs root"))
    func onAFullDiskPullsStillWorkAndPushesSayStorageFull() async throws {
        let disk = try TinyDisk(megabytes: 8)
        defer { disk.unmount() }
        let server = try await TestServer(directory: disk.path + "/srv")
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let first = Self.newEnquiry(&device, "e-before", wall: server.clock.milliseconds())
            _ = try await client.syncOK(device.request(first), token: device.token)
            disk.fill()
            server.clock.advance(5 * 60 * 1000)
            let pulled = try await client.pullAll(device)
            #expect(pulled.changes.contains { $0.change.row == "e-before" }, "a pull reads; it needs no room")
            let push = Self.newEnquiry(&device, "e-during", wall: server.clock.milliseconds(), message: String(repeating: "x", count: 9000))
            let refused = try await client.sync(device.request(push, cursor: pulled.cursor), token: device.token)
            #expect(refused.status.code == 507 && (try? Wire.problem(refused).code) == "storage_full", "\(String(buffer: refused.body))")
            #expect(try await Self.health(client).1.problem == "storage_full")

            disk.free()
            #expect(try await Self.health(client).0 == .ok)
            let stored = try await client.syncOK(device.request(push, cursor: pulled.cursor), token: device.token)
            #expect(stored.acknowledged == push.last!.counter)
        }
    }

    /// A start on a full disk names the file, and what it leaves behind does not block the start after room is made.
    @Test(.enabled(if: TinyDisk.isAvailable, "mounting a tmpfs needs root"))
    func aStartOnAFullDiskNamesTheStoreAndTheNextStartWorks() async throws {
        let disk = try TinyDisk(megabytes: 8)
        defer { disk.unmount() }
        let directory = disk.path + "/srv"
        do { _ = try SQLiteServerStore(directory: directory) }
        disk.fill()
        let error = #expect(throws: StoreError.self) { try SQLiteServerStore(directory: directory) }
        #expect(error?.code == .storeUnavailable && error?.detail.contains(SQLiteServerStore.path(in: directory)) == true, "\(String(describing: error))")
        disk.free()
        _ = try SQLiteServerStore(directory: directory)
    }

    @Test(arguments: ["deleted", "replaced"])
    func aStoreDeletedOrReplacedUnderTheServerIsRefusedNotWrittenInto(what: String) async throws {
        let server = try await TestServer()
        let path = SQLiteServerStore.path(in: server.directory)
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            if what == "deleted" {
                try FileManager.default.removeItem(atPath: path)
            } else {
                // A restore done with `mv`: another file now has the name.
                try FileManager.default.copyItem(atPath: path, toPath: path + ".copy")
                _ = rename(path + ".copy", path)
            }
            let (status, health) = try await Self.health(client)
            #expect(status == .serviceUnavailable && health.problem == "store_unavailable", "\(health)")
            #expect(health.detail?.contains(what == "deleted" ? "deleted or moved away" : "replaced") == true, "\(health)")
            let push = Self.newEnquiry(&device, "e-lost", wall: server.clock.milliseconds())
            let refused = try await client.sync(device.request(push), token: device.token)
            #expect(refused.status == .serviceUnavailable)
            #expect(try Wire.problem(refused).code == "store_unavailable")
            let written = try await server.store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM enquiry") ?? 0 }
            #expect(written == 0, "nothing went into the unlinked file")
        }
    }

    @Test func aFolderWhoseStoreIsGoneIsRefusedNotGivenAnEmptyStore() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-gone-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = SQLiteServerStore.path(in: directory)
        do { _ = try SQLiteServerStore(directory: directory) }
        #expect(FileManager.default.fileExists(atPath: SQLiteServerStore.markerPath(in: directory)))
        try FileManager.default.removeItem(atPath: path)
        let error = #expect(throws: StoreError.self) { try SQLiteServerStore(directory: directory) }
        #expect(error?.code == .storeUnavailable && error?.detail.contains(path) == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: path), "no new, empty store")

        // Without the marker (a store from before it), a WAL left beside the missing file says the same.
        try FileManager.default.removeItem(atPath: SQLiteServerStore.markerPath(in: directory))
        #expect(FileManager.default.createFile(atPath: path + "-wal", contents: Data()))
        let leftover = #expect(throws: StoreError.self) { try SQLiteServerStore(directory: directory) }
        #expect(leftover?.detail.contains("server.sqlite-wal") == true, "\(String(describing: leftover))")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func aReadOnlyStoreIsRefusedByNameAndLeavesNoFilesThatBlockTheNextStart() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-readonly-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = SQLiteServerStore.path(in: directory)
        do { _ = try SQLiteServerStore(directory: directory) }
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: path)
        let error = #expect(throws: StoreError.self) { try SQLiteServerStore(directory: directory) }
        #expect(error?.code == .storeUnavailable && error?.detail.contains("\(path) is read-only") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: path + "-wal") && !FileManager.default.fileExists(atPath: path + "-shm"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        _ = try SQLiteServerStore(directory: directory)
    }

    @Test func rejectionsAreCountedByReasonOncePerChangeNotPerReplay() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let outOfScope = device.write(.enquiry, "e-richmond", [(Columns.Enquiry.branch, "richmond")], wall: server.clock.milliseconds())
            _ = try await client.syncOK(device.request(outOfScope), token: device.token)
            _ = try await client.syncOK(device.request(outOfScope), token: device.token)  // a replay: reported again, not counted
            let forbidden = device.write(.content, "manual-therapy", [(Columns.Content.title, "Hacked")], wall: server.clock.milliseconds())
            _ = try await client.syncOK(device.request(forbidden), token: device.token)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"clinicsync_changes_rejected_total{reason="out_of_scope"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"clinicsync_changes_rejected_total{reason="forbidden"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"clinicsync_changes_rejected_total{reason="invalid"} 0"#), "\(metrics)")
        }
    }

    @Test func anErasureOfAnEnquiryTheServerNeverHeldIsAcceptedNotRefused() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            device.counter += 1
            let erase = PushedChange(counter: device.counter, change: Change(
                table: .enquiry, row: "e-never-synced", operation: .erase,
                version: Version(hlc: device.clock.tick(wall: server.clock.milliseconds()), replica: device.replica)))
            let response = try await client.syncOK(device.request([erase]), token: device.token)
            #expect(response.rejected.isEmpty, "\(response.rejected)")
            #expect(response.acknowledged == device.counter)
            // A late copy of the row's writes (a duplicated request) meets the tombstone and stores nothing.
            let late = Self.newEnquiry(&device, "e-never-synced", wall: server.clock.milliseconds())
            _ = try await client.syncOK(device.request(late), token: device.token)
            let names = try await server.store.writer.read { db in try String.fetchAll(db, sql: "SELECT name FROM enquiry WHERE name IS NOT NULL") }
            #expect(names.isEmpty)
        }
    }
}
