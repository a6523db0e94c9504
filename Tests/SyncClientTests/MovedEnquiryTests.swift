import Foundation
import SyncClient
import SyncCore
import SyncServer
import Testing

/// Work done offline on an enquiry that meanwhile moved to another branch follows it there (SPEC 7.5):
/// its author could not have known, and no text may disappear.
@Suite("Work on an enquiry that moved away")
struct MovedEnquiryTests {
    @Test func offlineEditsAndNotesFollowTheEnquiryToItsNewBranch() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let richmond = try await harness.terminal("r", branch: "richmond")
            let id = try a.replica.enquiries.add(NewEnquiry(name: "Test Patient Moved", phone: "020 7946 0042", topic: "hip pain"))
            try await a.sync()
            // Head office moves it to Richmond while a is offline and working on it.
            try await harness.store.write([CellWrite(.enquiry, id, Columns.Enquiry.branch, .text("richmond"))])
            let note = try a.replica.enquiries.addNote(to: id, body: "Called back, prefers mornings")
            try a.replica.enquiries.update(id, status: "contacted", assignedTo: "amy")
            let summary = try await a.sync()
            #expect(summary.rejected == 0, "nothing refused")
            #expect(try a.replica.deadLetters().isEmpty)
            #expect(try a.replica.enquiries.get(id) == nil, "a's branch no longer holds it")
            try await richmond.sync()
            let moved = try #require(try richmond.replica.enquiries.get(id))
            #expect(moved.status == "contacted" && moved.assignedTo == "amy")
            #expect(try richmond.replica.enquiries.notes(of: id).map(\.id) == [note])
            #expect(try richmond.replica.enquiries.notes(of: id).first?.body == "Called back, prefers mornings")
            // Once a has heard of the move, it may no longer write there.
            let forged = try await harness.terminal("a2")
            try forged.replica.write(.enquiry, id, [(Columns.Enquiry.status, .text("spam"))])
            let refused = try await forged.sync()
            #expect(refused.rejected == 1)
            try await richmond.sync()
            #expect(try richmond.replica.enquiries.get(id)?.status == "contacted")
        }
    }
}
