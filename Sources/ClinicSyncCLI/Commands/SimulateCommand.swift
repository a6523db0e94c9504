import ArgumentParser
import Foundation
import SyncSimulator

/// `clinic-sync simulate`: the deterministic conflict simulator.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic sync simulator: the real server and terminal code over a faulty in-memory network.",
        discussion: """
            Terminals are real replica files and the server a real store, in a temporary folder; time is virtual and every \
            choice derives from --seed, so a run replays exactly. After --steps random steps it heals every fault, fixes every \
            clock, syncs everyone until nothing moves and checks: convergence, no silent loss, conflicts recorded, notes, \
            scope, clocks, erasure. On a violation it prints the trace of the rows involved, shrinks the run and prints a \
            replay command, and exits 1. --scenario replays a hand-written file from fixtures/scenarios/.
            """)

    @Option(help: "The seed every choice derives from.") var seed: UInt64 = 1
    @Option(help: "Reception terminals, spread over two branches (each branch also has an editor device).") var terminals = 3
    @Option(help: "Random steps before quiescence.") var steps = 40
    @Option(help: ArgumentHelp("Faults to inject: drop,dup,reorder,partition,crash,skew,move,erase,rollback,restore,poison,extreme, all or none.", valueName: "list"))
    var faults = "all"
    @Option(help: ArgumentHelp("Replay a scenario file instead of random steps.", valueName: "file")) var scenario: String?
    @Option(help: ArgumentHelp("Run this many seeds, from --seed on, and print one summary line.", valueName: "n")) var seeds = 1
    @Option(help: ArgumentHelp("With --seeds: simulations run at once (one per core unless given).", valueName: "n"))
    var parallel = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Print the report as JSON (identical for identical runs).") var json = false
    @Flag(help: "Print every event of the run.") var trace = false
    @Flag(help: "Do not look for a shorter failing run.") var noShrink = false

    func validate() throws {
        guard terminals >= 1, terminals <= 64 else { throw ValidationError("--terminals must be 1...64") }
        guard steps >= 0 else { throw ValidationError("--steps must not be negative") }
        guard seeds >= 1, parallel >= 1 else { throw ValidationError("--seeds and --parallel must be positive") }
        guard FaultSet(list: faults) != nil else {
            throw ValidationError("--faults: unknown fault in '\(faults)'; use drop,dup,reorder,partition,crash,skew,move,erase,rollback,restore,poison,extreme, all or none")
        }
    }

    func run() async throws {
        if let scenario {
            let report = try await Scenario.load(scenario).run(replay: "swift run clinic-sync simulate --scenario \(scenario)")
            try finish(report)
            return
        }
        let configuration = SimulationConfiguration(
            seed: seed, terminals: terminals, steps: steps, faults: FaultSet(list: faults)!)
        if seeds > 1 {
            try await soak(configuration)
            return
        }
        var report = try await SimulationRunner.run(configuration)
        if !report.passed && !noShrink && configuration.steps > 1, let shrunk = try await SimulationRunner.shrink(configuration),
           shrunk.steps < configuration.steps
        {
            report.shrunkTo = shrunk.steps
            report.replay = configuration.replayCommand + "   (shortest failing: " + shrunk.replay + ")"
        }
        try finish(report)
    }

    private func finish(_ report: SimulationReport) throws {
        if trace { print(report.trace.map(\.line).joined(separator: "\n")) }
        print(json ? report.json : report.text)
        if !report.passed { throw ExitCode(1) }
    }

    /// Many seeds, a few at a time; one line per failing seed, then `N passed, M failed`.
    private func soak(_ base: SimulationConfiguration) async throws {
        let started = ContinuousClock.now
        var passed = 0
        var failed: [SimulationReport] = []
        try await withThrowingTaskGroup(of: SimulationReport.self) { group in
            var next = base.seed
            let end = base.seed &+ UInt64(seeds)
            func start() {
                var configuration = base
                configuration.seed = next
                next &+= 1
                group.addTask { try await SimulationRunner.run(configuration) }
            }
            for _ in 0..<min(parallel, seeds) { start() }
            while let report = try await group.next() {
                if report.passed { passed += 1 } else {
                    failed.append(report)
                    print("FAIL seed \(report.seed): \(report.violations.first?.description ?? "")\n  replay: \(report.replay)")
                }
                if next != end { start() }
            }
        }
        let seconds = (ContinuousClock.now - started).components.seconds
        if !failed.isEmpty {
            print("failing seeds: \(failed.map(\.seed).sorted().map(String.init).joined(separator: " "))")
        }
        print("\(passed) passed, \(failed.count) failed")
        Output.standardError("\(seeds) seeds in \(seconds) s\n")
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
