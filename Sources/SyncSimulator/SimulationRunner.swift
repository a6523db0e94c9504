import SyncCore

/// Runs random simulations from a seed, and shrinks failing ones.
public enum SimulationRunner {
    /// Terminal names: `a`, `b`, … `z`, then `t27`, `t28`, ….
    static func terminalName(_ index: Int) -> String {
        index < 26 ? String(UnicodeScalar(UInt8(97 + index))) : "t\(index + 1)"
    }

    /// Runs one random simulation: setup, `steps` random steps, quiescence, checks.
    public static func run(_ configuration: SimulationConfiguration) async throws -> SimulationReport {
        let simulation = try await Simulation(seed: configuration.seed, mergeRule: configuration.mergeRule)
        let pageSizes: [UInt32] = [0, 7, 3]
        let pushBatches = [500, 5, 2]
        for index in 0..<max(1, configuration.terminals) {
            try await simulation.addDevice(terminalName(index), branch: Simulation.branches[index % 2],
                                           pageSize: pageSizes[index % 3], pushBatchSize: pushBatches[index % 3])
        }
        for branch in Simulation.branches {
            try await simulation.addDevice("ed-\(branch.split(separator: "-").first!)", branch: branch, role: .editor, pageSize: 5, pushBatchSize: 4)
        }
        simulation.network.withState { $0.randomFaults = configuration.faults.intersection([.drop, .duplicate, .reorder, .crash]) }
        let workload = RandomWorkload(random: SeededRandom(seed: configuration.seed), faults: configuration.faults)
        for step in 0..<configuration.steps {
            simulation.begin(step: step + 1)
            for action in try workload.next(in: simulation) {
                try await simulation.perform(action)
            }
        }
        simulation.begin(step: configuration.steps + 1)
        try await simulation.quiesce()
        let violations = try await simulation.check()
        return try SimulationReport(scenario: nil, configuration: configuration, replay: configuration.replayCommand, simulation: simulation, violations: violations)
    }

    /// Looks for the fewest steps at which a failing run still fails (binary search on `steps`).
    /// Returns that run's report, or nil if even the full run passes.
    public static func shrink(_ configuration: SimulationConfiguration) async throws -> SimulationReport? {
        var failing = try await run(configuration)
        guard !failing.passed else { return nil }
        var low = 0, high = configuration.steps
        while high - low > 1 {
            var candidate = configuration
            candidate.steps = (low + high) / 2
            let report = try await run(candidate)
            if report.passed { low = candidate.steps } else { high = candidate.steps; failing = report }
        }
        return failing
    }
}
