import SyncCore

/// One line of a simulation's trace: what happened, to which rows, at which step and virtual time.
public struct TraceEvent: Hashable, Sendable, Codable {
    /// The step of the run (0: setup; after the last step: quiescence).
    public var step: Int
    /// Virtual milliseconds since the simulation started.
    public var time: UInt64
    /// `a`, `ed-richmond`, `server`, `net`, `sim`.
    public var actor: String
    /// What happened, in words.
    public var text: String
    /// Labels of the enquiries it touched (`e3`); notes and conflicts count for their enquiry.
    public var rows: [String]

    /// `#0012 0d+00:03:21.500 a          update e3 status=booked`.
    public var line: String {
        let number = String(step)
        let padded = String(repeating: "0", count: max(0, 4 - number.count)) + number
        let who = actor.count >= 11 ? actor : actor + String(repeating: " ", count: 11 - actor.count)
        return "#\(padded) \(SimulatedDuration.elapsed(time)) \(who) \(text)"
    }
}

/// Readable names for rows: enquiries `e1`, `e2`…; notes `e1.n3` (by their enquiry); conflicts by the row they are about.
struct Labels {
    private(set) var byID: [String: String] = [:]
    private(set) var enquiryIDs: [String: String] = [:]
    private(set) var noteEnquiry: [String: String] = [:]
    private(set) var enquiryCount = 0
    private(set) var noteCount = 0

    mutating func newEnquiry(id: String, label: String? = nil) -> String {
        enquiryCount += 1
        let label = label ?? "e\(enquiryCount)"
        byID[id] = label
        enquiryIDs[label] = id
        return label
    }

    mutating func newNote(id: String, enquiry: String, label: String? = nil) -> String {
        noteCount += 1
        let enquiryLabel = byID[enquiry] ?? enquiry
        let label = label.map { "\(enquiryLabel).\($0)" } ?? "\(enquiryLabel).n\(noteCount)"
        byID[id] = label
        noteEnquiry[id] = enquiry
        return label
    }

    /// A conflict row is about this row id.
    mutating func conflict(id: String, about row: String) {
        guard byID[id] == nil else { return }
        let about = noteEnquiry[row] ?? row
        byID[id] = "\(byID[about] ?? about).conflict"
    }

    func label(_ id: String) -> String { byID[id] ?? id }

    /// The enquiry label a row id counts for.
    func enquiryLabel(of id: String) -> String {
        let label = byID[id] ?? id
        return label.split(separator: ".").first.map(String.init) ?? label
    }

    func id(ofEnquiry label: String) -> String? { enquiryIDs[label] }
}
