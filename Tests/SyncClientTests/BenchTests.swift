import Foundation
import Logging
import SyncBench
import SyncServer
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

    /// Keeps `clinic-sync loadgen` from rotting: real enrollments and syncs over HTTP, counted. Asserts
    /// what was measured, never how fast.
    @Test func loadgenEnrollsTerminalsPushesAndPullsOverHTTP() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-loadgen-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteServerStore(directory: directory)
        var logger = Logger(label: "loadgen-test")
        logger.logLevel = .warning
        var server = ServerConfiguration(port: 0)
        // Two terminals pushing back to back on a fast loopback would meet the default budget: not what this tests.
        server.deviceRateLimit = nil
        let report = try await withRunningServer(server, store: store, logger: logger) { port in
            var configuration = LoadConfiguration(server: "http://127.0.0.1:\(port)", data: directory, terminals: 6)
            configuration.busy = 2
            configuration.branches = 2
            configuration.changesPerSync = 15
            configuration.duration = 1.5
            configuration.pullInterval = 0.5
            configuration.serverPID = getpid()
            return try await LoadGenerator(configuration: configuration).run()
        }
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.pushes > 0 && report.acceptedChanges == report.pushes * 15 && report.rejectedChanges == 0)
        #expect(report.pulls > 0 && report.pulledCells > 0, "idle terminals pulled what the busy ones of their branch pushed")
        #expect(report.latency.count == report.requests && report.latency.p99 >= report.latency.p50 && report.latency.max > 0)
        #expect(try #require(report.server).rssMiB > 0)
        #expect(try await store.devices().count == 6)
        #expect(report.text.contains("accepted changes/s"))
    }
}
