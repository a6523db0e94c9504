import Foundation
import SyncClient
import SyncCore
import SyncServer
import Testing

/// Invariant 12: the outbox always drains. No value a receptionist can type or paste holds back the
/// changes behind it, whatever the server's limits.
@Suite("The outbox always drains")
struct OutboxDrainTests {
    let sample = NewEnquiry(name: "Test Patient Two", phone: "020 7946 0102", email: "patient.two@example.invalid",
                            topic: "neck pain", message: "Stiff neck after a fall", preferredContact: "email", consentToContact: true)

    /// Pseudo-random printable text that deflate cannot shrink much, deterministic per seed.
    static func incompressibleText(bytes: Int, seed: UInt64) -> String {
        var generator = SplitMix64(seed: seed)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,")
        return String((0..<bytes).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }

    @Test func aPastedLineOfDashesDoesNotBlockTheTerminal() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(sample)
            let dashes = String(repeating: "-", count: 120_000)
            try a.replica.enquiries.addNote(to: id, body: dashes)
            let first = try await a.sync()
            #expect(first.rejected == 0)
            #expect(try a.replica.status().pendingChanges == 0)
            // Whatever comes after it leaves the terminal too.
            let later = try a.replica.enquiries.add(sample)
            try await a.sync()
            try await b.sync()
            #expect(try b.replica.enquiries.get(later) != nil)
            #expect(try b.replica.enquiries.notes(of: id).map(\.body) == [dashes])
        }
    }

    @Test func aValueAboveTheLimitIsRefusedAtWriteTimeAndNothingElseIsHeldBack() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(sample)
            let pending = try a.replica.status().pendingChanges
            let huge = String(repeating: "x", count: 5 << 20)
            let error = #expect(throws: ReplicaError.self) { try a.replica.enquiries.addNote(to: id, body: huge) }
            #expect(error?.description.contains("at most \(Schema.maxValueBytes) bytes") == true, "\(String(describing: error))")
            #expect(try a.replica.status().pendingChanges == pending, "the refused write left nothing behind")
            #expect(try a.replica.enquiries.notes(of: id).isEmpty)
            let later = try a.replica.enquiries.add(sample)
            try await a.sync()
            try await b.sync()
            #expect(try b.replica.enquiries.get(id) != nil && b.replica.enquiries.get(later) != nil)
        }
    }

    /// A server with tight limits: a push too big as a whole is split; a single write too big at any
    /// size is dead-lettered with the server's reason; everything else gets through.
    @Test func aPushRefusedAsAWholeIsSplitUntilEveryChangeIsAcceptedOrDeadLettered() async throws {
        var limits = SyncLimits()
        limits.inflate.maxCompressedBytes = 24 << 10
        limits.maxChangesPerPush = 40
        try await Harness.run(limits: limits) { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            let id = try a.replica.enquiries.add(sample)
            // 60 notes of ~2 KB of noise: ~120 KB of deflated body and 60+ changes, far over both limits.
            let notes = try (0..<60).map { index in
                try a.replica.enquiries.addNote(to: id, body: Self.incompressibleText(bytes: 2_000, seed: UInt64(index)))
            }
            // One note that alone deflates past the body limit.
            let tooBig = try a.replica.enquiries.addNote(to: id, body: Self.incompressibleText(bytes: 60_000, seed: 99))
            let later = try a.replica.enquiries.add(sample)
            let summary = try await a.sync()
            #expect(try a.replica.status().pendingChanges == 0, "the outbox drained")
            let deadLetters = try a.replica.deadLetters()
            #expect(Set(deadLetters.map(\.row)) == [tooBig], "\(deadLetters)")
            #expect(deadLetters.allSatisfy { $0.reason == "body_too_large" })
            #expect(summary.rejected == deadLetters.count)
            try await b.sync()
            #expect(try b.replica.enquiries.get(later) != nil)
            #expect(Set(try b.replica.enquiries.notes(of: id).map(\.id)) == Set(notes))
        }
    }
}
