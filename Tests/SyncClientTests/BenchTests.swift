import Foundation
import SyncBench
import Testing

@Suite("Benchmark, quick mode")
struct BenchTests {
    /// Keeps `clinic-sync bench` from rotting. Asserts what was measured, never how fast.
    @Test func quickBenchMeasuresEverySectionAgainstItsBaseline() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = try await Bench(configuration: BenchConfiguration(quick: true, binary: nil, directory: directory), say: { _ in }).run()
        let sections = Set(report.rows.map { String($0.benchmark.prefix(1)) })
        #expect(sections.isSuperset(of: ["1", "2", "3", "4", "5"]))
        for row in report.rows {
            #expect(row.value > 0 && row.baseline > 0 && row.ratio.isFinite, "\(row.benchmark): \(row.measure)")
        }
        #expect(report.markdownTable.contains("session changeset"))
        #expect(report.figures["load_p99_ms"] ?? 0 > 0)
    }
}
