import Foundation
import GRDB
import Logging
import SyncClient
import SyncCore
import SyncServer
import Testing

/// Invariant 10, server side: the server's store put back from last night's backup is an ordinary
/// event. Terminals notice, re-send what the store lost, and read everything again.
@Suite("Restored server store")
struct StoreRestoreTests {
    static func enquiry(_ label: String) -> NewEnquiry {
        NewEnquiry(name: "Test Patient \(label)", phone: "020 7946 0000", email: "\(label)@example.invalid",
                   topic: "back pain", message: "Enquiry \(label)", preferredContact: "phone", consentToContact: true)
    }

    static func terminal(_ replica: Replica, port: Int) -> Terminal {
        Terminal(replica: replica, engine: SyncEngine(replica: replica, transport: HTTPTransport(baseURL: "http://127.0.0.1:\(port)"), logger: Harness.logger))
    }

    @Test func everythingEveryTerminalHeldIsBackOnTheServerAndOnEveryTerminal() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-restore-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/server"
        let backup = directory + "/nightly.sqlite"
        let configuration = ServerConfiguration(port: 0)
        let (a, b): (Replica, Replica)
        let (before, epoch): ([String], String)
        do {
            let store = try SQLiteServerStore(directory: data)
            try await store.saveBranch(id: "harley-street", name: "Harley Street", address: nil, phone: nil)
            (a, b, before, epoch) = try await withRunningServer(configuration, store: store, logger: Harness.logger) { port in
                var codes: [String] = []
                for name in ["a", "b"] {
                    codes.append(try await store.issueEnrollmentCode(branch: "harley-street", name: name, role: .terminal).1)
                }
                let a = try Replica.open(at: directory + "/a.sqlite")
                let b = try Replica.open(at: directory + "/b.sqlite")
                try await a.enroll(server: "http://127.0.0.1:\(port)", code: codes[0], deviceName: "a")
                try await b.enroll(server: "http://127.0.0.1:\(port)", code: codes[1], deviceName: "b")
                var ids = [try a.enquiries.add(Self.enquiry("a0"))]
                try await Self.terminal(a, port: port).sync()
                try await Self.terminal(b, port: port).sync()
                // Last night's backup.
                try DatabasePool(path: data + "/" + SQLiteServerStore.fileName).backup(to: DatabaseQueue(path: backup))
                for index in 1...3 {
                    ids.append(try a.enquiries.add(Self.enquiry("a\(index)")))
                    ids.append(try b.enquiries.add(Self.enquiry("b\(index)")))
                }
                try await Self.terminal(a, port: port).sync()
                try await Self.terminal(b, port: port).sync()
                try await Self.terminal(a, port: port).sync()
                return (a, b, ids, try await store.epoch())
            }
        }
        // The disk dies; the backup goes back in place.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: data + "/" + SQLiteServerStore.fileName + suffix) }
        try FileManager.default.copyItem(atPath: backup, toPath: data + "/" + SQLiteServerStore.fileName)

        let store = try SQLiteServerStore(directory: data)
        try await withRunningServer(configuration, store: store, logger: Harness.logger) { port in
            let (a, b) = (Self.terminal(a, port: port), Self.terminal(b, port: port))
            // b writes more first, so the restored store's seqs pass a's cursor before a is heard from.
            var after: [String] = []
            for index in 4...8 { after.append(try b.replica.enquiries.add(Self.enquiry("b\(index)"))) }
            try await b.sync()
            try await a.sync()
            try await b.sync()
            try await a.sync()
            let all = Set(before + after)
            #expect(all.count == 12)
            let onA = Set(try a.replica.enquiries.list().map(\.id)), onB = Set(try b.replica.enquiries.list().map(\.id))
            #expect(onA == all, "a lacks \(all.subtracting(onA))")
            #expect(onB == all, "b lacks \(all.subtracting(onB))")
            #expect(try a.replica.status().pendingChanges == 0 && b.replica.status().pendingChanges == 0)
            #expect(try a.replica.deadLetters().isEmpty && b.replica.deadLetters().isEmpty)
            #expect(try await store.epoch() != epoch, "the restore was detected without an operator")
            #expect(try a.replica.conflicts.list().isEmpty)
        }
        // And a fresh terminal bootstrapping from the server gets all of it too.
        try await withRunningServer(configuration, store: store, logger: Harness.logger) { port in
            let code = try await store.issueEnrollmentCode(branch: "harley-street", name: "c", role: .terminal).1
            let c = try Replica.open(at: directory + "/c.sqlite")
            try await c.enroll(server: "http://127.0.0.1:\(port)", code: code, deviceName: "c")
            try await Self.terminal(c, port: port).sync()
            #expect(try c.enquiries.list().count == 12)
            #expect(try c.enquiries.get(before[1])?.message == "Enquiry a1")
        }
    }
}
