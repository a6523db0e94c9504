import Foundation
import SyncCore

/// What a run did and found. Its JSON form (``json``) holds nothing that depends on the machine or
/// the real clock, so two runs with the same seed print the same bytes.
public struct SimulationReport: Hashable, Sendable, Codable {
    /// Counts of what happened.
    public struct Summary: Hashable, Sendable, Codable {
        /// Trace lines.
        public var events = 0
        /// Sync cycles that completed.
        public var syncsSucceeded = 0
        /// Sync cycles that failed (offline, refused).
        public var syncsFailed = 0
        /// Enquiries created.
        public var enquiries = 0
        /// Notes created.
        public var notes = 0
        /// Local changes the server stored.
        public var writesAcknowledged = 0
        /// Local changes the server refused (dead letters).
        public var writesRejected = 0
        /// Writes that met a concurrent version of their cell (each must leave a conflict record).
        public var concurrentWritePairs = 0
        /// Conflict records on the server at the end.
        public var conflictsRecorded = 0
        /// Device crashes and restarts.
        public var deviceRestarts = 0
        /// Server crashes and restarts.
        public var serverRestarts = 0
        /// What the network did.
        public var network = NetworkStats()
    }

    /// The scenario's name, for scenario runs.
    public var scenario: String?
    /// The run's seed.
    public var seed: UInt64
    /// Devices (scenarios) or terminals (random runs).
    public var terminals: Int
    /// Steps run before quiescence.
    public var steps: Int
    /// The faults, as `--faults` lists them.
    public var faults: String
    /// The name of the merge rule a test put in place of the real one, if any.
    public var mergeRuleOverride: String?
    /// No invariant broke.
    public var passed: Bool { violations.isEmpty }
    /// Counts of what happened.
    public var summary: Summary
    /// What broke.
    public var violations: [Violation]
    /// The one-line command that replays this run.
    public var replay: String
    /// On failure: the last events touching the rows involved.
    public var failureTrace: [String]
    /// FNV-1a (64-bit) of the whole trace, one line per event.
    public var traceDigest: String
    /// Set when shrinking found a shorter failing run.
    public var shrunkTo: Int?
    /// Every event, in order (printed with `--trace`; not part of the JSON summary).
    public var trace: [TraceEvent]

    enum CodingKeys: String, CodingKey {
        case scenario, seed, terminals, steps, faults, mergeRuleOverride, passed, summary, violations, replay, failureTrace, traceDigest, shrunkTo
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        scenario = try container.decodeIfPresent(String.self, forKey: .scenario)
        seed = try container.decode(UInt64.self, forKey: .seed)
        terminals = try container.decode(Int.self, forKey: .terminals)
        steps = try container.decode(Int.self, forKey: .steps)
        faults = try container.decode(String.self, forKey: .faults)
        mergeRuleOverride = try container.decodeIfPresent(String.self, forKey: .mergeRuleOverride)
        summary = try container.decode(Summary.self, forKey: .summary)
        violations = try container.decode([Violation].self, forKey: .violations)
        replay = try container.decode(String.self, forKey: .replay)
        failureTrace = try container.decode([String].self, forKey: .failureTrace)
        traceDigest = try container.decode(String.self, forKey: .traceDigest)
        shrunkTo = try container.decodeIfPresent(Int.self, forKey: .shrunkTo)
        trace = []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(scenario, forKey: .scenario)
        try container.encode(seed, forKey: .seed)
        try container.encode(terminals, forKey: .terminals)
        try container.encode(steps, forKey: .steps)
        try container.encode(faults, forKey: .faults)
        try container.encodeIfPresent(mergeRuleOverride, forKey: .mergeRuleOverride)
        try container.encode(passed, forKey: .passed)
        try container.encode(summary, forKey: .summary)
        try container.encode(violations, forKey: .violations)
        try container.encode(replay, forKey: .replay)
        try container.encode(failureTrace, forKey: .failureTrace)
        try container.encode(traceDigest, forKey: .traceDigest)
        try container.encodeIfPresent(shrunkTo, forKey: .shrunkTo)
    }

    init(scenario: String?, configuration: SimulationConfiguration, replay: String, simulation: Simulation, violations: [Violation]) throws {
        self.scenario = scenario
        seed = configuration.seed
        terminals = configuration.terminals
        steps = configuration.steps
        faults = configuration.faults.list
        mergeRuleOverride = configuration.mergeRule?.name
        self.replay = replay
        self.violations = violations
        trace = simulation.trace
        let server = try simulation.readServer()
        summary = simulation.network.withState { state in
            var summary = Summary()
            summary.events = state.trace.count
            summary.enquiries = state.labels.enquiryCount
            summary.notes = state.labels.noteCount
            summary.writesAcknowledged = state.knowledge.accepted.count
            summary.writesRejected = state.knowledge.writes.values.filter { if case .rejected = $0.status { true } else { false } }.count
            summary.concurrentWritePairs = state.knowledge.expectedConflicts.count
            summary.network = state.stats
            return summary
        }
        summary.syncsSucceeded = simulation.syncsSucceeded
        summary.syncsFailed = simulation.syncsFailed
        summary.conflictsRecorded = server.conflicts.count
        summary.deviceRestarts = simulation.deviceRestarts
        summary.serverRestarts = simulation.server.restarts
        traceDigest = Self.digest(trace.map(\.line))
        let rows = Set(violations.flatMap(\.rows))
        let relevant = rows.isEmpty ? trace : trace.filter { !rows.isDisjoint(with: $0.rows) }
        failureTrace = violations.isEmpty ? [] : relevant.suffix(20).map(\.line)
    }

    /// FNV-1a, 64 bits, as 16 hex digits: stable everywhere, unlike `Hasher`.
    static func digest(_ lines: [String]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in lines.joined(separator: "\n").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Pretty JSON with sorted, snake_case keys.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// A few lines for people: the outcome, the counts, and on failure the violations, trace and replay command.
    public var text: String {
        let what = scenario.map { "scenario \($0)" } ?? "seed \(seed): \(terminals) terminals, \(steps) steps, faults \(faults)"
        var lines = ["\(passed ? "PASS" : "FAIL") \(what)\(mergeRuleOverride.map { " (merge rule replaced by a test: \($0))" } ?? "")"]
        let network = summary.network
        lines.append("  \(summary.events) events; \(summary.syncsSucceeded) syncs ok, \(summary.syncsFailed) failed; \(summary.enquiries) enquiries, \(summary.notes) notes; "
            + "\(summary.writesAcknowledged) writes acknowledged, \(summary.writesRejected) rejected; \(summary.concurrentWritePairs) concurrent writes, "
            + "\(summary.conflictsRecorded) conflict records")
        lines.append("  network: \(network.requests) requests, \(network.droppedRequests) requests and \(network.droppedResponses) responses dropped, "
            + "\(network.duplicated) duplicated, \(network.delayed) delayed, \(network.refusedPartitioned) refused by partitions; "
            + "\(summary.deviceRestarts) device and \(summary.serverRestarts) server restarts")
        if !passed {
            lines.append("  \(violations.count) violation\(violations.count == 1 ? "" : "s"):")
            lines += violations.prefix(12).map { "    \($0)" }
            if violations.count > 12 { lines.append("    … and \(violations.count - 12) more") }
            lines.append("  trace (the last events touching the rows involved):")
            lines += failureTrace.map { "    \($0)" }
            if let shrunkTo { lines.append("  shrunk: the run already fails after \(shrunkTo) steps") }
            lines.append("  replay: \(replay)")
        }
        return lines.joined(separator: "\n")
    }
}
