import Foundation
import SyncClient
import SyncCore

/// A hand-written simulation: devices and a list of steps, read from a JSON file in `fixtures/scenarios/`.
///
/// ```json
/// {
///   "name": "same-field-edit",
///   "description": "Two terminals change one enquiry's status offline.",
///   "devices": [{"name": "a", "branch": "harley-street"}, {"name": "b", "branch": "harley-street"}],
///   "steps": [
///     {"do": "add", "device": "a", "enquiry": "e1"},
///     {"do": "sync", "device": "a"}, {"do": "sync", "device": "b"},
///     {"do": "update", "device": "a", "enquiry": "e1", "status": "booked"},
///     {"do": "update", "device": "b", "enquiry": "e1", "status": "closed"},
///     {"do": "settle"},
///     {"do": "expect", "device": "a", "enquiry": "e1", "conflicts": 1}
///   ]
/// }
/// ```
/// fixtures/scenarios/README.md lists every step and expectation.
public struct Scenario: Hashable, Sendable, Codable {
    /// A device of the scenario: a terminal, or an editor, at a branch.
    public struct DeviceSpec: Hashable, Sendable, Codable {
        /// Its name in steps and in the trace.
        public var name: String
        /// `harley-street` or `richmond`.
        public var branch: String
        /// `terminal` (default) or `editor`.
        public var role: String?
    }

    /// One step. `do` names it; the other fields are its arguments.
    public struct Step: Hashable, Sendable, Codable {
        /// The step's name (fixtures/scenarios/README.md lists them).
        public var `do`: String
        /// The device the step acts on.
        public var device: String?
        /// The enquiry's label (`e1`).
        public var enquiry: String?
        /// `note`: the note's label.
        public var note: String?
        /// `update`, `expect`: the status.
        public var status: String?
        /// `update`, `expect`: who the enquiry is assigned to.
        public var assignedTo: String?
        /// `move`: the branch to move to.
        public var to: String?
        /// `advance`: how long (`7d`); `skew`: the clock's offset from true time (`+1y`, `0`).
        public var by: String?
        /// `fault`: drop_request, drop_response, duplicate, delay, server_crash, device_crash.
        public var fault: String?
        /// `sync`: `ok`, or the problem or error code the sync must fail with (`clock_drift`, `offline`).
        public var expect: String?
        /// `expect` step: the enquiry must be absent (true) or present (false) on the device.
        public var absent: Bool?
        /// `expect` step: how many conflict records (resolved or not) the device holds on the enquiry.
        public var conflicts: Int?
        /// `expect` step: how many notes the device holds on the enquiry.
        public var notes: Int?

        enum CodingKeys: String, CodingKey {
            case `do`, device, enquiry, note, status, assignedTo = "assigned_to", to, by, fault, expect, absent, conflicts, notes
        }
    }

    /// The scenario's name, in reports.
    public var name: String
    /// What it shows, for people.
    public var description: String?
    /// Ids and values derive from it (default 0).
    public var seed: UInt64?
    /// The devices, enrolled in this order before the first step.
    public var devices: [DeviceSpec]
    /// The steps, in order.
    public var steps: [Step]

    /// Reads a scenario file.
    public static func load(_ path: String) throws -> Scenario {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            return try JSONDecoder().decode(Scenario.self, from: data)
        } catch {
            throw SimulationError("\(path) is not a scenario: \(error)")
        }
    }

    /// Replays the scenario, then quiesces and runs every check; failed expectations are violations too.
    public func run(replay: String? = nil) async throws -> SimulationReport {
        let simulation = try await Simulation(seed: seed ?? 0)
        for device in devices {
            let role: DeviceRole = device.role == "editor" ? .editor : .terminal
            try await simulation.addDevice(device.name, branch: device.branch, role: role)
        }
        var failed: [Violation] = []
        for (index, step) in steps.enumerated() {
            simulation.begin(step: index + 1)
            failed += try await perform(step, number: index + 1, in: simulation)
        }
        simulation.begin(step: steps.count + 1)
        try await simulation.quiesce()
        let violations = failed + (try await simulation.check())
        let configuration = SimulationConfiguration(seed: seed ?? 0, terminals: devices.count, steps: steps.count, faults: [])
        return try SimulationReport(scenario: name, configuration: configuration, replay: replay ?? "swift run clinic-sync simulate --scenario <file>",
                                    simulation: simulation, violations: violations)
    }

    private func perform(_ step: Step, number: Int, in simulation: Simulation) async throws -> [Violation] {
        func need(_ value: String?, _ field: String) throws -> String {
            guard let value else { throw SimulationError("step \(number) (\(step.do)) needs \"\(field)\"") }
            return value
        }
        func duration(_ text: String?) throws -> Int64 {
            guard let milliseconds = SimulatedDuration.milliseconds(try need(text, "by")) else {
                throw SimulationError("step \(number): \"by\" must be a duration such as 90s, 5m, 2h, 7d, 1y")
            }
            return milliseconds
        }
        switch step.do {
        case "add": try await simulation.perform(.add(device: try need(step.device, "device"), enquiry: try need(step.enquiry, "enquiry")))
        case "update":
            try await simulation.perform(.update(device: try need(step.device, "device"), enquiry: try need(step.enquiry, "enquiry"),
                                                 status: step.status, assignedTo: step.assignedTo))
        case "note": try await simulation.perform(.note(device: try need(step.device, "device"), enquiry: try need(step.enquiry, "enquiry"), note: step.note ?? ""))
        case "erase": try await simulation.perform(.erase(device: try need(step.device, "device"), enquiry: try need(step.enquiry, "enquiry")))
        case "delete": try await simulation.perform(.delete(device: try need(step.device, "device"), enquiry: try need(step.enquiry, "enquiry")))
        case "move":
            try await simulation.perform(.move(device: try need(step.device, "device"), enquiry: try need(step.enquiry, "enquiry"), to: try need(step.to, "to")))
        case "sync":
            let device = try need(step.device, "device")
            try await simulation.perform(.sync(device: device))
            if let expected = step.expect, let outcome = simulation.lastSyncOutcome[device], outcome != expected {
                return [Violation(check: "expectation", message: "step \(number): \(device)'s sync should end \(expected), it ended \(outcome)")]
            }
        case "crash": try await simulation.perform(.crash(device: try need(step.device, "device")))
        case "crash_server": try await simulation.perform(.crashServer)
        case "skew": try await simulation.perform(.skew(device: try need(step.device, "device"), milliseconds: try duration(step.by)))
        case "isolate": try await simulation.perform(.isolate(device: try need(step.device, "device")))
        case "heal": try await simulation.perform(.heal(device: step.device))
        case "advance":
            let milliseconds = try duration(step.by)
            guard milliseconds >= 0 else { throw SimulationError("step \(number): time only moves forward") }
            try await simulation.perform(.advance(milliseconds: UInt64(milliseconds)))
        case "deliver_delayed": try await simulation.perform(.deliverDelayed)
        case "fault":
            guard let fault = NetworkFault(rawValue: try need(step.fault, "fault")) else {
                throw SimulationError("step \(number): unknown fault \(step.fault ?? ""); one of \(NetworkFault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            try await simulation.perform(.fault(device: try need(step.device, "device"), fault))
        case "settle": try await simulation.settle()
        case "quiesce": try await simulation.quiesce()
        case "expect": return try expect(step, number: number, in: simulation)
        default:
            throw SimulationError("step \(number): unknown step \"\(step.do)\"")
        }
        return []
    }

    private func expect(_ step: Step, number: Int, in simulation: Simulation) throws -> [Violation] {
        let name = step.device ?? ""
        let device = try simulation.requireDevice(name)
        let label = step.enquiry ?? ""
        let id = try simulation.requireEnquiry(label)
        let enquiry = try device.replica.enquiries.get(id)
        var failed: [String] = []
        if let absent = step.absent, absent != (enquiry == nil) {
            failed.append("\(label) should be \(absent ? "absent" : "present")")
        }
        if let status = step.status, enquiry?.status != status {
            failed.append("\(label).status should be \(status), is \(enquiry?.status ?? "absent")")
        }
        if let assignedTo = step.assignedTo, enquiry?.assignedTo != assignedTo {
            failed.append("\(label).assigned_to should be \(assignedTo), is \(enquiry?.assignedTo ?? "null")")
        }
        if let conflicts = step.conflicts {
            let count = try device.replica.conflicts.list(includeResolved: true).filter { $0.row == id }.count
            if count != conflicts { failed.append("\(label) should have \(conflicts) conflict records, has \(count)") }
        }
        if let notes = step.notes {
            let count = try device.replica.enquiries.notes(of: id).count
            if count != notes { failed.append("\(label) should have \(notes) notes, has \(count)") }
        }
        simulation.log(name, "expect " + (failed.isEmpty ? "ok" : "FAILED: " + failed.joined(separator: "; ")), rows: [label])
        return failed.map { Violation(check: "expectation", message: "step \(number) on \(name): \($0)", rows: [label]) }
    }
}
