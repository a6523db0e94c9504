import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import TestSupport
import Testing
@testable import ClinicSyncCLI

/// A terminal that meets a full disk, a revoke, an erasure before its first sync, or a conflict it
/// resolved (issue 14 items 6, 10 and 11; issue 10 item 8): it says what happened and keeps its data.
@Suite("Terminal recovery")
struct TerminalRecoveryTests {
    let sample = NewEnquiry(name: "Test Patient Nine", phone: "020 7946 0109", topic: "sciatica", message: "Sciatica since May")

    func issueCode(_ harness: Harness, branch: String = "harley-street", name: String) async throws -> String {
        var generator = SystemRandomNumberGenerator()
        let code = Credentials.makeEnrollmentCode(using: &generator)
        _ = try await harness.store.addDevice(branch: branch, name: name, role: .terminal, codeHash: Credentials.hash(Credentials.normalizedCode(code)),
                                              codeExpiresAt: Date().addingTimeInterval(3600))
        return code
    }

    /// `PRAGMA max_page_count` gives SQLITE_FULL exactly as a full disk does, on any machine.
    @Test func aWriteOnAFullReplicaSaysTheDiskIsFull() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let pages = try await a.replica.writer.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
            try await a.replica.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)") }
            var big = sample
            big.message = String(repeating: "back pain, ", count: 900)
            let error = #expect(throws: ReplicaError.self) { try a.replica.enquiries.add(big) }
            #expect(error?.code == .storageFull && error?.description.contains("\(a.replica.path) is full") == true, "\(String(describing: error))")
            #expect(try a.replica.enquiries.list().isEmpty, "and reading still works")
        }
    }

    /// A real full disk (a tmpfs filled to the last byte), the replica held open by nobody: reads work,
    /// writes fail with a clear message and a non-zero exit.
    @Test(.enabled(if: TinyDisk.isAvailable, "mounting a tmpfs needs root"))
    func onAFullDiskTheCLIReadsAndRefusesWritesClearly() async throws {
        let disk = try TinyDisk(megabytes: 8)
        defer { disk.unmount() }
        let file = disk.path + "/reception.sqlite"
        try await Harness.run { harness in
            do {
                let a = try await harness.terminal("a")
                _ = try a.replica.enquiries.add(sample)
                try await a.sync()
            }
            // Closed (the last connection checkpointed and removed its WAL): copy it onto the small disk.
            try FileManager.default.copyItem(atPath: "\(harness.directory)/a.sqlite", toPath: file)
        }
        disk.fill()
        #expect(await CLIContractTests.failure(["terminal", "enquiry", "list", "--db", file]) == nil)
        #expect(await CLIContractTests.failure(["terminal", "status", "--db", file]) == nil)
        let write = await CLIContractTests.failure(["terminal", "enquiry", "add", "--db", file, "--name", "Test Patient", "--phone", "020 7946 0000",
                                                    "--message", String(repeating: "x", count: 9000)])
        #expect(write?.contains("is full") == true, "\(write ?? "succeeded")")
        disk.free()
        #expect(await CLIContractTests.failure(["terminal", "enquiry", "add", "--db", file, "--name", "Test Patient", "--phone", "020 7946 0000"]) == nil)
    }

    @Test func reEnrollingAfterARevokeKeepsThePendingOutboxAndItReachesTheServer() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let synced = try a.replica.enquiries.add(sample)
            try await a.sync()
            let device = try await harness.store.devices().first { $0.name == "a" }!
            _ = try await harness.store.revokeDevice(id: device.id)
            let pending = try a.replica.enquiries.add(NewEnquiry(name: "Test Patient Ten", phone: "020 7946 0110"))
            await #expect(throws: SyncError.self) { try await a.sync() }

            let before = try #require(try a.replica.identity())
            let after = try await a.replica.enroll(server: harness.url, code: issueCode(harness, name: "a-again"), deviceName: "a-again")
            #expect(after.replica != before.replica && after.branch == before.branch)
            #expect(try a.replica.status().pendingChanges > 0, "the outbox is kept")
            #expect(try a.replica.enquiries.get(synced) != nil)
            try await a.sync()
            #expect(try a.replica.status().pendingChanges == 0 && a.replica.deadLetters().isEmpty)
            try await b.sync()
            #expect(try b.replica.enquiries.get(pending)?.name == "Test Patient Ten", "written before the re-enrollment, delivered after it")
            #expect(try b.replica.enquiries.get(synced) != nil)
        }
    }

    @Test func reEnrollingWithAnotherBranchsCodeIsRefusedAndChangesNothing() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            _ = try a.replica.enquiries.add(sample)
            let before = try a.replica.identity()
            let error = await #expect(throws: ReplicaError.self) {
                try await a.replica.enroll(server: harness.url, code: issueCode(harness, branch: "richmond", name: "r"), deviceName: "r")
            }
            #expect(error?.code == .alreadyEnrolled && error?.description.contains("richmond") == true)
            #expect(try a.replica.identity() == before)
        }
    }

    @Test func anEnquiryErasedBeforeItsFirstSyncLeavesNoDeadLetter() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let id = try a.replica.enquiries.add(sample)
            try a.replica.enquiries.erase(id)
            let summary = try await a.sync()
            #expect(summary.rejected == 0)
            #expect(try a.replica.deadLetters().isEmpty)
            #expect(try a.replica.status().pendingChanges == 0)
        }
    }

    @Test func aConflictResolvedKeepingMineShowsWhatWasKeptAndAdminNamesTheDevices() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(sample)
            try await a.sync()
            try await b.sync()
            try a.replica.enquiries.update(id, status: "booked")
            try b.replica.enquiries.update(id, status: "closed")
            try await a.sync()
            try await b.sync()
            try await a.sync()
            let conflict = try #require(try a.replica.conflicts.list().first)
            // Resolve on the side that lost, keeping its own value.
            let (loser, mine) = conflict.winnerValue == "booked" ? (b, "closed") : (a, "booked")
            let theirs = mine == "booked" ? "closed" : "booked"
            try loser.replica.conflicts.resolve(conflict.id, keep: .mine)
            for terminal in [loser] {
                let shown = try #require(try terminal.replica.conflicts.list(includeResolved: true).first)
                #expect(shown.resolved && shown.keptValue == mine && shown.alsoWrittenValue == theirs, "\(shown)")
                let row = try #require(TerminalCommand.ConflictsCommand.rows([shown]).first)
                #expect(row[3] == mine && row[4] == theirs, "KEPT and ALSO WRITTEN: \(row)")
            }
            let records = try await harness.store.conflicts(includeResolved: true)
            let listed = AdminCommand.Conflicts.List.rows(records).first ?? []
            #expect(listed.contains { $0.hasPrefix("a (") } && listed.contains { $0.hasPrefix("b (") }, "\(listed)")
        }
    }
}
