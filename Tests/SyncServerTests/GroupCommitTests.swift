import Foundation
import GRDB
import Testing
@testable import SyncServer

/// Group commit (issue 12 item 5): pushes queued together share a transaction, each in its savepoint.
@Suite("Group commit")
struct GroupCommitTests {
    struct Refused: Error {}

    @Test func concurrentWorkCommitsTogetherAndOneFailureFailsOnlyItself() async throws {
        let database = try DatabaseQueue()
        try await database.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)") }
        let commits = GroupCommit<Int>()
        let outcomes = await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
            for index in 0..<40 {
                group.addTask {
                    do {
                        return (index, .success(try await commits.run(on: database) { db in
                            try db.execute(sql: "INSERT INTO t (id, who) VALUES (?, ?)", arguments: [index, "job \(index)"])
                            // Job 7 fails after writing: its savepoint goes, its row with it.
                            if index == 7 { throw Refused() }
                            return index * 2
                        }))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for index in 0..<40 {
            let outcome = try #require(outcomes[index])
            if index == 7 {
                #expect(throws: Refused.self) { try outcome.get() }
            } else {
                #expect(try outcome.get() == index * 2)
            }
        }
        // Every answer came after its commit: all the other rows are there, and job 7's is not.
        let ids = try await database.read { db in try Int.fetchAll(db, sql: "SELECT id FROM t ORDER BY id") }
        #expect(ids == (0..<40).filter { $0 != 7 })
    }

    @Test func aFailedTransactionFailsEveryJobItTook() async throws {
        let database = try DatabaseQueue()
        try await database.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY)") }
        let commits = GroupCommit<Int>()
        // A deferred constraint breaks only at COMMIT (GRDB turns foreign keys on): the whole transaction
        // fails, and so does its job.
        try await database.write { db in
            try db.execute(sql: "CREATE TABLE child (parent INTEGER REFERENCES t(id) DEFERRABLE INITIALLY DEFERRED)")
        }
        await #expect(throws: DatabaseError.self) {
            try await commits.run(on: database) { db in
                try db.execute(sql: "INSERT INTO child (parent) VALUES (42)")
                return 1
            }
        }
        // The next one runs alone and commits.
        #expect(try await commits.run(on: database) { db in try db.execute(sql: "INSERT INTO t (id) VALUES (1)"); return 2 } == 2)
    }
}
