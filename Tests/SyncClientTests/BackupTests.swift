import Foundation
import GRDB
import Logging
import SyncClient
import SyncCore
import SyncServer
import Testing

/// `admin backup` and `admin restore` (issue 13): a backup taken while terminals sync, put back later,
/// loses nothing any terminal still holds, and an erasure made after the backup survives the restore.
@Suite("Backups")
struct BackupTests {
    @Test(arguments: [false, true])
    func aBackupTakenUnderLoadRestoresAndErasuresMadeSinceStayErased(compressed: Bool) async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-backup-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = directory + "/server"
        let backup = directory + (compressed ? "/nightly.sqlite.gz" : "/nightly.sqlite")
        let configuration = ServerConfiguration(port: 0)
        let erasedText = "Canary \(UUID().uuidString)"
        let (a, b, erased, erasedAtTerminal, written): (Replica, Replica, String, String, [String])
        do {
            let store = try SQLiteServerStore(directory: data)
            try await store.saveBranch(id: "harley-street", name: "Harley Street", address: nil, phone: nil)
            (a, b, erased, erasedAtTerminal, written) = try await withRunningServer(configuration, store: store, logger: Harness.logger) { port in
                var codes: [String] = []
                for name in ["a", "b"] { codes.append(try await store.issueEnrollmentCode(branch: "harley-street", name: name, role: .terminal).1) }
                let a = try Replica.open(at: directory + "/a.sqlite"), b = try Replica.open(at: directory + "/b.sqlite")
                try await a.enroll(server: "http://127.0.0.1:\(port)", code: codes[0], deviceName: "a")
                try await b.enroll(server: "http://127.0.0.1:\(port)", code: codes[1], deviceName: "b")
                var canary = StoreRestoreTests.enquiry("canary")
                canary.message = erasedText
                let erased = try a.enquiries.add(canary)
                let erasedAtTerminal = try b.enquiries.add(StoreRestoreTests.enquiry("erased at b"))
                try await StoreRestoreTests.terminal(a, port: port).sync()
                try await StoreRestoreTests.terminal(b, port: port).sync()

                // Both terminals write and sync in rounds while the backup is taken, mid-load.
                let (rounds, roundsDone) = AsyncStream.makeStream(of: Int.self)
                let ids = try await withThrowingTaskGroup(of: [String].self) { group in
                    for (name, replica) in [("a", a), ("b", b)] {
                        group.addTask {
                            var ids: [String] = []
                            for round in 0..<8 {
                                ids.append(try replica.enquiries.add(StoreRestoreTests.enquiry("\(name)\(round)")))
                                try await StoreRestoreTests.terminal(replica, port: port).sync()
                                if name == "a" { roundsDone.yield(round) }
                            }
                            if name == "a" { roundsDone.finish() }
                            return ids
                        }
                    }
                    group.addTask {
                        for await round in rounds where round == 2 { break }
                        let report = try await store.backup(to: backup, compress: compressed)
                        #expect(report.compressed == compressed && report.lastSeq > 0)
                        return []
                    }
                    return try await group.reduce(into: [String]()) { $0 += $1 }
                }
                // Erased after the backup was taken, by the office and by a terminal: the backup still holds both.
                #expect(try await store.eraseHeld(.enquiry, row: erased) == .erased)
                try b.enquiries.erase(erasedAtTerminal)
                for replica in [a, b] { try await StoreRestoreTests.terminal(replica, port: port).sync() }
                #expect(try a.enquiries.get(erased) == nil)
                return (a, b, erased, erasedAtTerminal, ids)
            }
        }
        // The disk is lost or damaged: the backup goes back, with the server stopped.
        let report = try await SQLiteServerStore.restore(directory: data, from: backup)
        #expect(report.erasuresReplayed == 2)
        #expect(report.previousStore != nil)

        let store = try SQLiteServerStore(directory: data)
        try await withRunningServer(configuration, store: store, logger: Harness.logger) { port in
            for _ in 0..<2 {
                for replica in [a, b] { try await StoreRestoreTests.terminal(replica, port: port).sync() }
            }
            let code = try await store.issueEnrollmentCode(branch: "harley-street", name: "c", role: .terminal).1
            let c = try Replica.open(at: directory + "/c.sqlite")
            try await c.enroll(server: "http://127.0.0.1:\(port)", code: code, deviceName: "c")
            try await StoreRestoreTests.terminal(c, port: port).sync()
            let expected = Set(written)
            #expect(expected.count == 16)
            for (name, replica) in [("a", a), ("b", b), ("c", c)] {
                let held = Set(try replica.enquiries.list().map(\.id))
                #expect(held == expected, "\(name) lacks \(expected.subtracting(held)), has extra \(held.subtracting(expected))")
                #expect(try replica.enquiries.get(erased) == nil && replica.enquiries.get(erasedAtTerminal) == nil, "\(name) holds an erased enquiry again")
                #expect(try replica.status().pendingChanges == 0 && replica.deadLetters().isEmpty)
            }
        }
        // Invariant 9: the erased text is in none of the store's files.
        for suffix in ["", "-wal"] {
            let bytes = FileManager.default.contents(atPath: SQLiteServerStore.path(in: data) + suffix) ?? Data()
            #expect(bytes.range(of: Data(erasedText.utf8)) == nil, "erased text in server.sqlite\(suffix)")
        }
    }

    @Test func aRestoreRefusesARunningServerAndAnotherStoresBackupAndChangesNothing() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-backup-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteServerStore(directory: directory + "/one")
        _ = try await store.backup(to: directory + "/one.sqlite", compress: false)
        let other = try SQLiteServerStore(directory: directory + "/other")
        _ = try await other.backup(to: directory + "/other.sqlite", compress: false)
        let before = try Data(contentsOf: URL(fileURLWithPath: SQLiteServerStore.path(in: directory + "/one")))

        do {
            let lock = try ServerLock.acquire(directory: directory + "/one")
            let running = await #expect(throws: BackupError.self) { try await SQLiteServerStore.restore(directory: directory + "/one", from: directory + "/one.sqlite") }
            #expect(running?.description.contains("the server is running") == true)
            withExtendedLifetime(lock) {}
        }

        let foreign = await #expect(throws: BackupError.self) { try await SQLiteServerStore.restore(directory: directory + "/one", from: directory + "/other.sqlite") }
        #expect(foreign?.description.contains("is a backup of store") == true, "\(String(describing: foreign))")
        try #require(FileManager.default.createFile(atPath: directory + "/notes.txt", contents: Data("not a store".utf8)))
        await #expect(throws: BackupError.self) { try await SQLiteServerStore.restore(directory: directory + "/one", from: directory + "/notes.txt") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: SQLiteServerStore.path(in: directory + "/one"))) == before, "the store is untouched")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/one").filter { $0.hasPrefix("replaced-") || $0.hasPrefix(".restore") }.isEmpty)
        let exists = await #expect(throws: BackupError.self) { try await store.backup(to: directory + "/one.sqlite", compress: false) }
        #expect(exists?.description.contains("already exists") == true)
    }
}
