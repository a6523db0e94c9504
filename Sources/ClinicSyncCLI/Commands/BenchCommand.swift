import ArgumentParser
import Foundation
import SyncBench

/// `clinic-sync bench`: the headline figures, each beside its baseline measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure write overhead, apply rate, bytes per cell, bootstrap, load and the daemon against baselines.",
        discussion: """
            Build with -c release first; debug builds are several times slower. `tools/bench` runs this and \
            rewrites BENCHMARKS.md. --quick uses tiny sizes (what `swift test` runs so the code never rots).
            """)

    @Flag(help: "Tiny sizes: seconds, for smoke tests.") var quick = false
    @Option(help: "Work folder (wiped first).") var dir = NSTemporaryDirectory() + "clinic-sync-bench"
    @Option(help: "Idle seconds to sample the daemon for (default 60, 1 with --quick).") var daemonSeconds: Double?
    @Option(help: ArgumentHelp("Run only these sections, e.g. 1,2 (for profiling).", valueName: "list")) var only: String?
    @OptionGroup var output: JSONFlag

    func run() async throws {
        var configuration = BenchConfiguration(quick: quick, binary: Bundle.main.executablePath, directory: dir)
        if let daemonSeconds { configuration.daemonIdleSeconds = daemonSeconds }
        if let only {
            let sections = only.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sections.isEmpty, sections.allSatisfy((1...6).contains) else { throw ValidationError("--only takes section numbers 1 to 6, e.g. 1,2") }
            configuration.sections = Set(sections)
        }
        let json = output.json
        let report = try await Bench(configuration: configuration, say: { if !json { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }).run()
        if json { try Output.json(report); return }
        print(report.markdownTable)
        print("")
        for (name, value) in report.figures.sorted(by: { $0.key < $1.key }) { print("\(name): \(String(format: "%.2f", value))") }
    }
}
