import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import Testing

/// An erasure meets a long reader (a backup, a report) holding the file: it commits and says so, and
/// its text leaves every file as soon as the reader lets go (SPEC 7.6, invariant 9).
@Suite("Erasure while a reader holds the file")
struct ErasureWithReaderTests {
    static func holds(_ secret: String, in path: String) throws -> Bool {
        for file in [path, path + "-wal"] where FileManager.default.fileExists(atPath: file) {
            if try Data(contentsOf: URL(fileURLWithPath: file)).range(of: Data(secret.utf8)) != nil { return true }
        }
        return false
    }

    @Test func theErasureCommitsAndTheScrubFinishesWhenTheReaderLetsGo() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(NewEnquiry(name: "ERASE-ME-READER", message: "ERASE-ME-MESSAGE"))
            try await a.sync()
            try await b.sync()
            let path = b.replica.path
            // A report on another connection, in the middle of a read.
            var configuration = Configuration()
            configuration.allowsUnsafeTransactions = true
            let report = try DatabaseQueue(path: path, configuration: configuration)
            try report.inDatabase { db in
                try db.execute(sql: "BEGIN DEFERRED")
                _ = try Row.fetchAll(db, sql: "SELECT * FROM enquiry")
            }
            try b.replica.enquiries.erase(id)
            #expect(try b.replica.enquiries.get(id) == nil, "the erasure committed")
            #expect(b.replica.isWALScrubPending, "and says its scrub waits for the reader")
            // A sync meanwhile works (the server erases too), whatever the reader does.
            try await b.sync()
            try report.inDatabase { db in try db.execute(sql: "COMMIT") }
            // The next sync finishes the scrub.
            try await b.sync()
            #expect(!b.replica.isWALScrubPending)
            #expect(try !Self.holds("ERASE-ME-READER", in: path) && !Self.holds("ERASE-ME-MESSAGE", in: path))
            try await a.sync()
            #expect(try a.replica.enquiries.get(id) == nil)
        }
    }
}
