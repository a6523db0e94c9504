import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import Testing

@Suite("Terminals against a real server on loopback")
struct TerminalSyncTests {
    let sample = NewEnquiry(name: "Test Patient One", phone: "020 7946 0101", email: "patient.one@example.invalid",
                            topic: "sciatica", message: "Leg pain since March", preferredContact: "phone", consentToContact: true)

    @Test func anEnquiryTakenOfflineReachesTheOtherTerminalOfTheBranchIntact() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let other = try await harness.terminal("r", branch: "richmond")
            // Taken with no network at all: a local write needs no server.
            let id = try a.replica.enquiries.add(sample)
            #expect(try a.replica.status().pendingChanges == 10)
            let pushed = try await a.sync()
            #expect(pushed.pushed == 10 && pushed.rejected == 0)
            #expect(try a.replica.status().pendingChanges == 0)
            try await b.sync()
            try await other.sync()
            let onA = try #require(try a.replica.enquiries.get(id))
            let onB = try #require(try b.replica.enquiries.get(id))
            #expect(onA == onB)
            #expect(onB.name == "Test Patient One" && onB.branch == "harley-street" && onB.status == "new")
            #expect(try other.replica.enquiries.get(id) == nil, "another branch never sees it")
            #expect(try b.replica.content.item(slug: "manual-therapy")?.title == "Manual Therapy")
        }
    }

    @Test(arguments: [false, true])
    func concurrentEditsConvergeToOneWinnerAndOneVisibleConflict(bFirst: Bool) async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(sample)
            try await a.sync()
            try await b.sync()
            // Both offline, both edit the status.
            try a.replica.enquiries.update(id, status: "booked")
            try b.replica.enquiries.update(id, status: "closed")
            let (first, second) = bFirst ? (b, a) : (a, b)
            try await first.sync()
            try await second.sync()
            try await first.sync()
            let statusA = try a.replica.enquiries.get(id)?.status
            let statusB = try b.replica.enquiries.get(id)?.status
            #expect(statusA == statusB)
            #expect(statusA == "closed" || statusA == "booked")
            let conflictsA = try a.replica.conflicts.list()
            let conflictsB = try b.replica.conflicts.list()
            #expect(conflictsA.count == 1 && conflictsB.count == 1)
            let conflict = try #require(conflictsA.first)
            #expect(Set([conflict.winnerValue, conflict.loserValue]) == ["booked", "closed"])
            #expect(conflict.winnerValue == statusA)
            #expect(conflictsB.first?.id == conflict.id)

            // Resolving on one terminal clears it everywhere after sync.
            try b.replica.conflicts.resolve(conflict.id, keep: .value("booked"))
            #expect(try b.replica.conflicts.list().isEmpty, "resolved locally at once")
            try await b.sync()
            try await a.sync()
            #expect(try a.replica.conflicts.list().isEmpty)
            #expect(try a.replica.enquiries.get(id)?.status == "booked")
            #expect(try await harness.store.conflicts(includeResolved: false).isEmpty)
        }
    }

    @Test func concurrentNotesAreAllKeptWithoutConflict() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(sample)
            try await a.sync()
            try await b.sync()
            try a.replica.enquiries.addNote(to: id, body: "Left a voicemail", author: "reception a")
            try b.replica.enquiries.addNote(to: id, body: "Patient called back", author: "reception b")
            try b.replica.enquiries.addNote(to: id, body: "Booked for Tuesday", author: "reception b")
            try await a.sync()
            try await b.sync()
            try await a.sync()
            let notesA = try a.replica.enquiries.notes(of: id).map(\.body).sorted()
            let notesB = try b.replica.enquiries.notes(of: id).map(\.body).sorted()
            #expect(notesA == ["Booked for Tuesday", "Left a voicemail", "Patient called back"])
            #expect(notesA == notesB)
            #expect(try a.replica.conflicts.list(includeResolved: true).isEmpty)
        }
    }

    @Test func aLostAckMakesTheRepushChangeNothing() async throws {
        try await Harness.run { harness in
            let faulty = FaultyTransport(HTTPTransport(baseURL: harness.url), loseResponseOfCalls: [1])
            let a = try await harness.terminal("a", transport: faulty)
            let id = try a.replica.enquiries.add(sample)
            await #expect(throws: SyncError.self) { try await a.sync() }
            #expect(try a.replica.status().pendingChanges == 10, "nothing acknowledged, nothing dropped")
            let cellsBefore = try await harness.store.conflicts(includeResolved: true).count
            try await a.sync()
            #expect(try a.replica.status().pendingChanges == 0)
            let b = try await harness.terminal("b")
            try await b.sync()
            #expect(try b.replica.enquiries.list().map(\.id) == [id], "exactly one enquiry, no duplicate")
            #expect(try await harness.store.conflicts(includeResolved: true).count == cellsBefore, "the replay made no conflict")
        }
    }

    @Test func aPullInterruptedMidwayResumesWithNoGapAndNoDuplicate() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            for index in 0..<30 {
                try a.replica.enquiries.add(NewEnquiry(name: "Test Patient \(index)", topic: "back pain"))
            }
            try await a.sync()
            let faulty = FaultyTransport(HTTPTransport(baseURL: harness.url), failBeforeCalls: [3])
            var b = try await harness.terminal("b", transport: faulty)
            b.engine.pageSize = 50
            await #expect(throws: SyncError.self) { try await b.sync() }
            let partial = try b.replica.status()
            #expect(partial.cursor > 0 && partial.enquiries < 30, "two pages landed before the link dropped")
            let summary = try await b.sync()
            #expect(summary.roundTrips > 1)
            let ids = try b.replica.enquiries.list().map(\.id)
            #expect(ids.count == 30 && Set(ids).count == 30)
            #expect(Set(ids) == Set(try a.replica.enquiries.list().map(\.id)))
        }
    }

    @Test func anOutOfScopeChangeGoesToDeadLettersAndNeverBlocksTheOutbox() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let r = try await harness.terminal("r", branch: "richmond")
            let richmondEnquiry = try r.replica.enquiries.add(sample)
            try await r.sync()
            // Forge an edit of another branch's row straight into a's outbox, as a buggy app might.
            try a.replica.enquiries.add(sample)
            try a.replica.write(.enquiry, richmondEnquiry, [(Columns.Enquiry.status, "spam")])
            let summary = try await a.sync()
            #expect(summary.rejected == 1)
            #expect(try a.replica.deadLetters().map(\.reason) == ["out_of_scope"])
            #expect(try a.replica.status().pendingChanges == 0)
            try await r.sync()
            #expect(try r.replica.enquiries.get(richmondEnquiry)?.status == "new")
        }
    }

    @Test func erasureLeavesNoTraceInAnyDatabaseOrWALFile() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(NewEnquiry(name: "ERASE-ME-NAME", message: "ERASE-ME-SYMPTOMS"))
            try a.replica.enquiries.addNote(to: id, body: "ERASE-ME-NOTE")
            try await a.sync()
            try await b.sync()
            #expect(try b.replica.enquiries.get(id) != nil)
            try b.replica.enquiries.erase(id)
            try await b.sync()
            try await a.sync()
            #expect(try a.replica.enquiries.get(id) == nil && b.replica.enquiries.get(id) == nil)
            let files = try FileManager.default.subpathsOfDirectory(atPath: harness.directory).filter { $0.contains(".sqlite") }
            #expect(files.count >= 3)
            for file in files {
                let data = try Data(contentsOf: URL(fileURLWithPath: harness.directory + "/" + file))
                for secret in ["ERASE-ME-NAME", "ERASE-ME-SYMPTOMS", "ERASE-ME-NOTE"] {
                    #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) survives in \(file)")
                }
            }
        }
    }

    @Test func replicaFilesArePrivateAndPlainSQLite() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            try a.replica.enquiries.add(sample)
            let attributes = try FileManager.default.attributesOfItem(atPath: a.replica.path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let queue = try DatabaseQueue(path: a.replica.path)
            let name = try await queue.read { db in try String.fetchOne(db, sql: "SELECT name FROM enquiry") }
            #expect(name == "Test Patient One")
        }
    }

    @Test func aRevokedTerminalGetsATypedError() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            try await a.sync()
            let device = try await harness.store.devices().first { $0.name == "a" }!
            _ = try await harness.store.revokeDevice(id: device.id)
            let error = await #expect(throws: SyncError.self) { try await a.sync() }
            #expect(error?.code == .unauthorized && error?.problem == "revoked_token")
            let offline = SyncEngine(replica: a.replica, transport: HTTPTransport(baseURL: "http://127.0.0.1:9", timeout: .seconds(1)))
            let down = await #expect(throws: SyncError.self) { try await offline.sync() }
            #expect(down?.code == .offline)
        }
    }
}
