import SyncClient
import SyncCore

/// A conflict test in a few lines: real replicas and a real server in a temporary folder, a virtual
/// clock and an in-memory network, with every invariant checked at the end.
///
/// ```swift
/// import SyncSimulator
/// import Testing
///
/// @Test func twoReceptionistsBookTheSamePatient() async throws {
///     try await ConflictTest.run { test in
///         let a = try await test.terminal("a"), b = try await test.terminal("b")
///         let e1 = try await a.addEnquiry()
///         try await a.sync(); try await b.sync()
///         try await a.update(e1, status: "booked")       // both offline,
///         try await b.update(e1, status: "closed")       // both edit the same field
///         try await test.settle()                        // everyone syncs until nothing moves
///         #expect(try a.enquiry(e1)?.status == b.enquiry(e1)?.status)
///         #expect(try a.conflicts(on: e1).count == 1)
///     }
/// }
/// ```
///
/// `run` then heals every fault, fixes every clock, syncs everyone until nothing moves and runs the
/// simulator's checks (convergence, no silent loss, conflicts recorded, notes, scope, clocks,
/// erasure); a broken invariant throws ``ConflictTestFailure`` with a readable trace.
public struct ConflictTest {
    /// The world the test runs in: its trace, its devices.
    public let simulation: Simulation

    /// Runs `body` in a fresh world (branches `harley-street` and `richmond`), then checks everything.
    @discardableResult
    public static func run(seed: UInt64 = 0, _ body: (ConflictTest) async throws -> Void) async throws -> SimulationReport {
        let simulation = try await Simulation(seed: seed)
        let test = ConflictTest(simulation: simulation)
        simulation.begin(step: 1)
        try await body(test)
        simulation.begin(step: 2)
        try await simulation.quiesce()
        let violations = try await simulation.check()
        let configuration = SimulationConfiguration(seed: seed, terminals: simulation.devices.count, steps: 1, faults: [])
        let report = try SimulationReport(scenario: "conflict test", configuration: configuration, replay: "rerun the test", simulation: simulation,
                                          violations: violations)
        if !report.passed { throw ConflictTestFailure(report: report) }
        return report
    }

    /// A reception terminal: a new replica file enrolled at `branch`.
    public func terminal(_ name: String, branch: String = "harley-street") async throws -> Device {
        try await simulation.addDevice(name, branch: branch)
        return Device(simulation: simulation, name: name)
    }

    /// An editor device (it may move enquiries between branches).
    public func editor(_ name: String, branch: String = "harley-street") async throws -> Device {
        try await simulation.addDevice(name, branch: branch, role: .editor)
        return Device(simulation: simulation, name: name)
    }

    /// Every device syncs, round after round, until nothing moves.
    public func settle() async throws {
        try await simulation.settle()
    }

    /// True time moves on (`"7d"`, `"90s"`).
    public func advance(_ duration: String) async throws {
        guard let milliseconds = SimulatedDuration.milliseconds(duration), milliseconds >= 0 else { throw SimulationError("not a duration: \(duration)") }
        try await simulation.perform(.advance(milliseconds: UInt64(milliseconds)))
    }

    /// The server crashes and restarts from its file.
    public func crashServer() async throws {
        try await simulation.perform(.crashServer)
    }

    /// The simulation's trace so far, one line per event.
    public var trace: [String] { simulation.trace.map(\.line) }

    /// A device in a ``ConflictTest``. Enquiries are named by labels (`e1`), which `addEnquiry` returns.
    public struct Device {
        let simulation: Simulation
        /// The device's name, as the trace shows it.
        public let name: String

        private func perform(_ action: Action) async throws { try await simulation.perform(action) }

        /// Takes a new enquiry (offline: nothing leaves the device until it syncs) and returns its label.
        @discardableResult
        public func addEnquiry(_ label: String = "") async throws -> String {
            try await perform(.add(device: name, enquiry: label))
            return label.isEmpty ? simulation.network.withState { "e\($0.labels.enquiryCount)" } : label
        }

        /// Changes an enquiry's status and/or who it is assigned to, on this device only until it syncs.
        public func update(_ enquiry: String, status: String? = nil, assignedTo: String? = nil) async throws {
            try await perform(.update(device: name, enquiry: enquiry, status: status, assignedTo: assignedTo))
        }

        /// Adds a note to an enquiry (`label` names it in the trace).
        public func addNote(to enquiry: String, _ label: String = "") async throws {
            try await perform(.note(device: name, enquiry: enquiry, note: label))
        }

        /// Erases an enquiry (UK GDPR): it and its notes disappear everywhere once synced.
        public func erase(_ enquiry: String) async throws { try await perform(.erase(device: name, enquiry: enquiry)) }
        /// Deletes an enquiry (a tombstone).
        public func delete(_ enquiry: String) async throws { try await perform(.delete(device: name, enquiry: enquiry)) }
        /// Moves an enquiry to another branch (an editor device's write).
        public func move(_ enquiry: String, to branch: String) async throws { try await perform(.move(device: name, enquiry: enquiry, to: branch)) }

        /// One sync cycle. Returns `ok`, or the problem (`clock_drift`) or error code (`offline`) it failed with.
        @discardableResult
        public func sync() async throws -> String {
            try await perform(.sync(device: name))
            return simulation.lastSyncOutcome[name] ?? "ok"
        }

        /// Kills the device and restarts it: its replica is reopened from the file.
        public func crash() async throws { try await perform(.crash(device: name)) }
        /// Cuts the device off the server: its syncs fail with `offline`.
        public func goOffline() async throws { try await perform(.isolate(device: name)) }
        /// Reconnects the device.
        public func comeOnline() async throws { try await perform(.heal(device: name)) }
        /// Sets this device's wall clock `offset` from true time (`"+1y"`, `"-5m"`, `"0"` to fix it).
        public func setClock(_ offset: String) async throws {
            guard let milliseconds = SimulatedDuration.milliseconds(offset) else { throw SimulationError("not a duration: \(offset)") }
            try await perform(.skew(device: name, milliseconds: milliseconds))
        }
        /// The next request of this device meets `fault`.
        public func inject(_ fault: NetworkFault) async throws { try await perform(.fault(device: name, fault)) }

        /// The device's real replica, for anything the helpers below do not cover.
        public var replica: Replica { simulation.device(name)!.replica }

        /// The enquiry as this device holds it, or nil.
        public func enquiry(_ label: String) throws -> Enquiry? {
            guard let id = simulation.enquiryID(label) else { return nil }
            return try replica.enquiries.get(id)
        }

        /// Conflict records (resolved or not) this device holds on an enquiry.
        public func conflicts(on label: String) throws -> [Conflict] {
            guard let id = simulation.enquiryID(label) else { return [] }
            return try replica.conflicts.list(includeResolved: true).filter { $0.row == id }
        }

        /// The notes this device holds on an enquiry.
        public func notes(of label: String) throws -> [EnquiryNote] {
            guard let id = simulation.enquiryID(label) else { return [] }
            return try replica.enquiries.notes(of: id)
        }
    }
}

/// A conflict test broke an invariant; the description is the simulator's report.
public struct ConflictTestFailure: Error, CustomStringConvertible {
    /// The run's report: violations, trace, replay.
    public let report: SimulationReport
    public var description: String { report.text }
}
