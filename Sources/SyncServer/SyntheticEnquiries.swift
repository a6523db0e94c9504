import Foundation
import SyncCore

/// Deterministic, obviously fake enquiries for tests, the demo and benchmarks. Names are
/// "Test Patient N", phone numbers come from Ofcom's drama range, emails end in `.invalid`.
public enum SyntheticEnquiries {
    static let topics = ["back pain", "sciatica", "neck pain", "bulging disc", "manual therapy", "sports injury", "posture", "second opinion"]
    static let messages = [
        "Lower back pain after lifting; would like an assessment.",
        "Pain down the left leg for three weeks, worse when sitting.",
        "Stiff neck from desk work; interested in manual therapy.",
        "Was told I have a bulging disc; looking for treatment options.",
        "Would like to book a physiotherapy rehabilitation programme.",
        "Asking about acupuncture alongside physiotherapy.",
    ]
    static let statuses = ["new", "new", "new", "contacted", "booked", "closed"]
    static let contacts = ["phone", "email", "either"]

    /// `count` enquiries spread over `branches`, the same for the same seed. Each is one row's cells.
    public static func generate(count: Int, seed: UInt64, branches: [String], startingAt epochSeconds: Double = 1_764_000_000) -> [(id: String, cells: [CellWrite])] {
        precondition(!branches.isEmpty, "at least one branch")
        var rng = SplitMix64(seed: seed)
        let formatter = ISO8601DateFormatter()
        return (0..<count).map { index in
            var bytes = [UInt8](repeating: 0, count: 16)
            for offset in stride(from: 0, to: 16, by: 8) {
                withUnsafeBytes(of: rng.next()) { bytes.replaceSubrange(offset..<offset + 8, with: $0) }
            }
            bytes[6] = bytes[6] & 0x0F | 0x40
            bytes[8] = bytes[8] & 0x3F | 0x80
            let id = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                                 bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15])).uuidString.lowercased()
            let number = index + 1
            let created = formatter.string(from: Date(timeIntervalSince1970: epochSeconds + Double(index) * 97))
            let row: [(ColumnID, Value)] = [
                (Columns.Enquiry.branch, .text(branches[Int(rng.next() % UInt64(branches.count))])),
                (Columns.Enquiry.createdAt, .text(created)),
                (Columns.Enquiry.name, .text("Test Patient \(number)")),
                (Columns.Enquiry.phone, .text(String(format: "020 7946 %04d", Int(rng.next() % 1000)))),
                (Columns.Enquiry.email, .text("test.patient.\(number)@example.invalid")),
                (Columns.Enquiry.topic, .text(topics[Int(rng.next() % UInt64(topics.count))])),
                (Columns.Enquiry.message, .text(messages[Int(rng.next() % UInt64(messages.count))])),
                (Columns.Enquiry.preferredContact, .text(contacts[Int(rng.next() % UInt64(contacts.count))])),
                (Columns.Enquiry.consentToContact, .integer(rng.next() % 10 == 0 ? 0 : 1)),
                (Columns.Enquiry.status, .text(statuses[Int(rng.next() % UInt64(statuses.count))])),
            ]
            return (id, row.map { CellWrite(.enquiry, id, $0.0, $0.1) })
        }
    }
}

