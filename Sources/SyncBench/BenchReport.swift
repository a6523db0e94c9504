import Foundation

/// One measured figure beside its baseline, measured in the same run.
public struct BenchRow: Sendable, Codable {
    /// Section number and short name, e.g. "1 local writes".
    public var benchmark: String
    public var measure: String
    public var value: Double
    public var unit: String
    public var baselineName: String
    public var baseline: Double
    /// value / baseline.
    public var ratio: Double
    public var goal: String
    /// nil where the row has no goal of its own.
    public var met: Bool?
}

/// Everything `clinic-sync bench` measured.
public struct BenchReport: Sendable, Codable {
    public var date: String
    public var machine: String
    public var quick: Bool
    public var sizes: [String: Int]
    public var rows: [BenchRow]
    /// Figures without a baseline of their own (latencies, RSS).
    public var figures: [String: Double]
}

/// Sizes of one run. `quick` keeps every section tiny so `swift test` exercises the code.
public struct BenchConfiguration: Sendable {
    public var quick: Bool
    public var localWrites: Int
    public var applyRows: Int
    public var wireRows: Int
    public var bootstrapRows: Int
    public var loadTerminals: Int
    public var loadChangesPerTerminal: Int
    public var daemonIdleSeconds: Double
    /// The clinic-sync binary, to measure the daemon as its own process; nil skips section 6.
    public var binary: String?
    public var directory: String
    /// Which sections to run (1...6); all by default. Profiling one section at a time keeps a profile readable.
    public var sections: Set<Int> = Set(1...6)

    public init(quick: Bool, binary: String?, directory: String) {
        self.quick = quick
        self.binary = binary
        self.directory = directory
        localWrites = quick ? 200 : 10_000
        applyRows = quick ? 200 : 20_000
        wireRows = quick ? 200 : 10_000
        bootstrapRows = quick ? 300 : 100_000
        loadTerminals = quick ? 8 : 200
        loadChangesPerTerminal = 20
        daemonIdleSeconds = quick ? 1 : 60
    }
}

extension BenchReport {
    /// BENCHMARKS.md's table.
    public var markdownTable: String {
        var lines = ["| # | measure | ClinicSync | baseline (same run) | ratio | goal | met |", "|---|---|---|---|---|---|---|"]
        for row in rows {
            let met = row.met.map { $0 ? "yes" : "**no**" } ?? "–"
            lines.append("| \(row.benchmark) | \(row.measure) | \(Self.format(row.value)) \(row.unit) | \(row.baselineName): \(Self.format(row.baseline)) \(row.unit) | \(String(format: "%.2f×", row.ratio)) | \(row.goal) | \(met) |")
        }
        return lines.joined(separator: "\n")
    }

    static func format(_ value: Double) -> String {
        if value >= 100 { return String(format: "%.0f", value) }
        if value >= 10 { return String(format: "%.1f", value) }
        return String(format: "%.2f", value)
    }
}
