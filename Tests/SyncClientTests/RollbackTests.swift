import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import Testing

/// Invariant 10: a terminal's file restored from an older copy of itself (a backup, a VM snapshot) is
/// an ordinary event. Nothing written after the restore is taken for a replay and dropped.
@Suite("Restored terminals")
struct RollbackTests {
    static func enquiry(_ n: Int) -> NewEnquiry {
        NewEnquiry(name: "Test Patient \(n)", phone: "020 7946 01\(n % 10)\(n % 10)", email: "patient\(n)@example.invalid",
                   topic: "back pain", message: "Enquiry \(n)", preferredContact: "phone", consentToContact: true)
    }

    /// A consistent copy of a terminal's file, opened as the terminal it was: what a restore leaves.
    static func snapshot(_ terminal: Terminal, in harness: Harness, as name: String, transport: (any SyncTransport)? = nil) throws -> (copy: String, open: () throws -> Terminal) {
        let path = "\(harness.directory)/\(name).sqlite"
        try terminal.replica.writer.backup(to: DatabaseQueue(path: path))
        return (path, {
            let replica = try Replica.open(at: path)
            return Terminal(replica: replica, engine: SyncEngine(replica: replica, transport: transport ?? HTTPTransport(baseURL: harness.url), logger: Harness.logger))
        })
    }

    @Test func aRestoredTerminalsNewEnquiryReachesTheOtherTerminal() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let before = try a.replica.enquiries.add(Self.enquiry(1))
            // Pending when the copy is taken: the lost future pushes it, the restored file pushes it again.
            let pendingAtBackup = try a.replica.enquiries.add(Self.enquiry(2))
            let backup = try Self.snapshot(a, in: harness, as: "a-nightly")
            try await a.sync()
            let lostFuture = try a.replica.enquiries.add(Self.enquiry(3))
            try await a.sync()
            let oldReplica = try #require(try a.replica.identity()).replica

            // The disk dies; last night's copy is put back.
            let restored = try backup.open()
            let afterRestore = try restored.replica.enquiries.add(Self.enquiry(4))
            try await restored.sync()
            try await b.sync()
            try await restored.sync()

            let all = Set([before, pendingAtBackup, lostFuture, afterRestore])
            #expect(Set(try b.replica.enquiries.list().map(\.id)) == all)
            #expect(Set(try restored.replica.enquiries.list().map(\.id)) == all)
            #expect(try b.replica.enquiries.get(afterRestore)?.message == "Enquiry 4")
            #expect(try restored.replica.status().pendingChanges == 0)
            #expect(try restored.replica.conflicts.list().isEmpty && b.replica.conflicts.list().isEmpty)
            let newReplica = try #require(try restored.replica.identity()).replica
            #expect(newReplica != oldReplica)
            #expect(newReplica.rawValue == oldReplica.rawValue &+ 1 || newReplica.rawValue == oldReplica.rawValue &- 1,
                    "next to the old id, so ties between equal clocks break the same way")
            let server = try await harness.store.devices().first { $0.replica == newReplica }
            #expect(server != nil, "the server knows the device by its new replica id")
        }
    }

    /// Simulator seed 40002: a note pending in the copy, stored by the lost future, is re-stamped to the
    /// new replica id with its clock reading (SPEC 7.8). Notes are insert-only, but this is the same
    /// write, not an edit: refused `immutable`, the author dead-lettered it and dropped its own copy.
    @Test func aNoteTheLostFutureStoredIsNotRefusedWhenReSentUnderTheNewReplicaID() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let enquiry = try a.replica.enquiries.add(Self.enquiry(1))
            try await a.sync()
            let note = try a.replica.enquiries.addNote(to: enquiry, body: "Called back, booked Tuesday")
            let backup = try Self.snapshot(a, in: harness, as: "a-nightly")
            try await a.sync()
            _ = try a.replica.enquiries.add(Self.enquiry(2))
            try await a.sync()

            // The copy goes back: the note is pending again, and a new write re-uses the lost future's counter.
            let restored = try backup.open()
            _ = try restored.replica.enquiries.add(Self.enquiry(3))
            try await restored.sync()
            try await restored.sync()
            try await b.sync()

            let deadLetters = try restored.replica.deadLetters()
            #expect(deadLetters.isEmpty, "\(deadLetters)")
            #expect(try restored.replica.enquiries.notes(of: enquiry).map(\.id) == [note], "the author keeps its note")
            #expect(try b.replica.enquiries.notes(of: enquiry).map(\.id) == [note])
            #expect(try restored.replica.status().pendingChanges == 0)
        }
    }

    @Test func theAnswerNamingTheNewReplicaCanBeLostAndIsGivenAgain() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            try a.replica.enquiries.add(Self.enquiry(1))
            try await a.sync()
            let faulty = FaultyTransport(HTTPTransport(baseURL: harness.url), loseResponseOfCalls: [1])
            let backup = try Self.snapshot(a, in: harness, as: "a-snapshot", transport: faulty)
            try a.replica.enquiries.add(Self.enquiry(2))
            try await a.sync()
            let restored = try backup.open()
            let afterRestore = try restored.replica.enquiries.add(Self.enquiry(3))
            await #expect(throws: SyncError.self) { try await restored.sync() }
            try await restored.sync()
            try await b.sync()
            #expect(try b.replica.enquiries.get(afterRestore) != nil)
            #expect(try b.replica.enquiries.list().count == 3)
            #expect(try restored.replica.enquiries.list().count == 3)
        }
    }

    @Test func aRetryAfterALostAnswerIsStillAReplayNotARestore() async throws {
        try await Harness.run { harness in
            let faulty = FaultyTransport(HTTPTransport(baseURL: harness.url), loseResponseOfCalls: [1])
            let a = try await harness.terminal("a", transport: faulty)
            let b = try await harness.terminal("b")
            let replica = try #require(try a.replica.identity()).replica
            let id = try a.replica.enquiries.add(Self.enquiry(1))
            await #expect(throws: SyncError.self) { try await a.sync() }
            try a.replica.enquiries.update(id, status: "contacted")
            try await a.sync()
            try await b.sync()
            #expect(try a.replica.identity()?.replica == replica)
            #expect(try b.replica.enquiries.get(id)?.status == "contacted")
        }
    }
}
