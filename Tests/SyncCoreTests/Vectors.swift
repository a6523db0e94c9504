import Foundation
@testable import SyncCore

/// The golden frames of protocol/vectors/. Shipped vectors are never edited: add new ones here.
enum Vectors {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocol/vectors")

    static let terminal = ReplicaID(0x5EED_0000_0000_00A1)
    static let server = ReplicaID(0x5EED_0000_0000_0001)
    static let clock = HLC(milliseconds: 1_764_380_000_000, counter: 0)
    static let enquiry = "6f1c2b3a-9d8e-4f70-a1b2-c3d4e5f60718"

    static func version(_ offset: UInt64, _ replica: ReplicaID) -> Version {
        Version(hlc: HLC(milliseconds: clock.milliseconds + offset, counter: 0), replica: replica)
    }

    /// Name → frame, in the order they were added.
    static let all: [(String, Frame)] = [
        ("enroll-request", .enrollRequest(EnrollRequest(code: "HRLY-7Q4M-K2PX", deviceName: "reception-1"))),
        ("enroll-response", .enrollResponse(EnrollResponse(
            token: "cs1_Zm9yLXRlc3Qtb25seS1ub3QtYS1yZWFsLXRva2Vu", replica: terminal, branch: "harley-street",
            role: .terminal, clock: clock))),
        ("sync-request-empty", .syncRequest(SyncRequest(replica: terminal, clock: clock, cursor: 0))),
        ("sync-request-new-enquiry", .syncRequest(SyncRequest(
            replica: terminal, clock: clock, cursor: 17, pageLimit: 500,
            changes: [
                (Columns.Enquiry.branch, Value.text("harley-street")),
                (Columns.Enquiry.createdAt, "2026-11-29T09:15:00Z"),
                (Columns.Enquiry.name, "Test Patient A"),
                (Columns.Enquiry.phone, "020 7946 0000"),
                (Columns.Enquiry.topic, "back pain"),
                (Columns.Enquiry.message, "Lower back pain after lifting; would like manual therapy."),
                (Columns.Enquiry.preferredContact, "phone"),
                (Columns.Enquiry.consentToContact, 1),
                (Columns.Enquiry.status, "new"),
            ].enumerated().map { index, cell in
                PushedChange(counter: UInt64(41 + index), change: Change(
                    table: .enquiry, row: enquiry, operation: .write(column: cell.0, value: cell.1, baseSeq: 0),
                    version: version(5, terminal)))
            }))),
        ("sync-request-status-update", .syncRequest(SyncRequest(
            replica: terminal, clock: clock, cursor: 230, pageLimit: 0,
            changes: [
                PushedChange(counter: 50, change: Change(
                    table: .enquiry, row: enquiry, operation: .write(column: Columns.Enquiry.status, value: "booked", baseSeq: 212),
                    version: version(60_000, terminal))),
                PushedChange(counter: 51, change: Change(
                    table: .enquiryNote, row: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                    operation: .write(column: Columns.Note.body, value: "Called back; booked for Tuesday.", baseSeq: 0),
                    version: version(60_001, terminal))),
            ]))),
        ("sync-request-erase", .syncRequest(SyncRequest(
            replica: terminal, clock: clock, cursor: 230,
            changes: [PushedChange(counter: 52, change: Change(table: .enquiry, row: enquiry, operation: .erase, version: version(70_000, terminal)))]))),
        ("sync-response-page", .syncResponse(SyncResponse(
            clock: HLC(milliseconds: clock.milliseconds + 90_000, counter: 3), acknowledged: 51,
            rejected: [Rejection(counter: 49, reason: .outOfScope)],
            changes: [
                PulledChange(seq: 231, change: Change(
                    table: .content, row: "manual-therapy", operation: .write(column: Columns.Content.title, value: "Manual Therapy", baseSeq: 0),
                    version: version(1_000, server))),
                PulledChange(seq: 232, change: Change(
                    table: .content, row: "manual-therapy", operation: .write(column: Columns.Content.position, value: 1, baseSeq: 0),
                    version: version(1_000, server))),
                PulledChange(seq: 240, change: Change(
                    table: .enquiry, row: enquiry, operation: .write(column: Columns.Enquiry.status, value: "booked", baseSeq: 0),
                    version: version(60_000, terminal))),
                PulledChange(seq: 241, change: Change(table: .enquiry, row: "old-enquiry-7", operation: .delete, version: version(61_000, server))),
            ],
            exits: [ScopeExit(seq: 239, table: .enquiry, row: "moved-enquiry-3")],
            cursor: 241, more: true))),
    ]
}
