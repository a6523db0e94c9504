import Foundation
import Logging
import SyncClient
import SyncCore
import SyncServer
import SyncStorage

extension Bench {
    // MARK: 4 and 6. Bootstrap over HTTP; the daemon's memory and CPU

    func bootstrapAndDaemon() async throws -> ([BenchRow], [String: Double]) {
        let serverDirectory = path("bootstrap-server")
        let store = try SQLiteServerStore(directory: serverDirectory)
        try await store.saveBranch(id: Self.branch, name: "Harley Street", address: "19 Harley St, London", phone: nil)
        let rows = SyntheticEnquiries.generate(count: configuration.bootstrapRows, seed: 4, branches: [Self.branch])
        for start in stride(from: 0, to: rows.count, by: 2_000) {
            try await store.write(rows[start..<min(start + 2_000, rows.count)].flatMap(\.cells))
        }
        try await store.write((0..<12).flatMap { index in
            [CellWrite(.content, "page-\(index)", Columns.Content.kind, "page"), CellWrite(.content, "page-\(index)", Columns.Content.slug, .text("page-\(index)")),
             CellWrite(.content, "page-\(index)", Columns.Content.title, .text("Page \(index)")),
             CellWrite(.content, "page-\(index)", Columns.Content.body, .text(String(repeating: "Manual therapy for back pain. ", count: 80)))]
        })
        let binary = configuration.binary
        let idleSeconds = configuration.daemonIdleSeconds
        let directory = configuration.directory
        let expectedRows = rows.count
        return try await withRunningServer(ServerConfiguration(port: 0), store: store, logger: Self.quietLogger) { port in
            let url = "http://127.0.0.1:\(port)"
            let (_, code) = try await store.issueEnrollmentCode(branch: Self.branch, name: "bench", role: .terminal)
            let replica = try Replica.open(at: directory + "/bootstrap-terminal.sqlite")
            try await replica.enroll(server: url, code: code, deviceName: "bench")
            let engine = SyncEngine(replica: replica, transport: HTTPTransport(baseURL: url), logger: Self.quietLogger)
            var summary = SyncSummary()
            let bootstrap = try await Self.time { summary = try await engine.sync() }
            guard try replica.status().enquiries == expectedRows else { throw BenchError("bootstrap pulled \(try replica.status().enquiries) of \(expectedRows) enquiries") }

            // The naive way: copy the server's whole file, deflated.
            await StorageConfiguration.checkpointTruncating(store.writerForTools)
            var copied = 0
            let naive = try Self.time {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: serverDirectory + "/" + SQLiteServerStore.fileName)))
                let deflated = Deflate.compress(bytes)
                try Data(deflated).write(to: URL(fileURLWithPath: directory + "/naive-copy.sqlite.z"))
                copied = deflated.count
            }
            var result = [
                BenchRow(benchmark: "4 bootstrap", measure: "fresh terminal pulls \(expectedRows) enquiries + content over HTTP", value: bootstrap, unit: "s",
                         baselineName: "copy server file, deflated", baseline: naive, ratio: bootstrap / naive, goal: "< 5 s and ≤ 2×",
                         met: bootstrap < 5 && bootstrap / naive <= 2),
                BenchRow(benchmark: "4 bootstrap", measure: "bytes on the wire for that bootstrap", value: Double(summary.bytesReceived + summary.bytesSent) / 1_048_576, unit: "MiB",
                         baselineName: "copy server file, deflated", baseline: Double(copied) / 1_048_576, ratio: Double(summary.bytesReceived + summary.bytesSent) / Double(copied),
                         goal: "≤ 2×", met: Double(summary.bytesReceived + summary.bytesSent) <= 2 * Double(copied)),
            ]
            var figures: [String: Double] = ["bootstrap_round_trips": Double(summary.roundTrips)]

            if let binary {
                // 6. The daemon as its own process: idle on a synced replica, then bootstrapping a fresh one.
                let idle = try DaemonProbe.start(binary: binary, replica: replica.path)
                try await Task.sleep(for: .seconds(2))
                let idleStart = try idle.sample()
                try await Task.sleep(for: .milliseconds(Int64(idleSeconds * 1000)))
                let idleEnd = try idle.sample()
                idle.stop()
                let (_, freshCode) = try await store.issueEnrollmentCode(branch: Self.branch, name: "bench-daemon", role: .terminal)
                let fresh = try Replica.open(at: directory + "/daemon-bootstrap.sqlite")
                try await fresh.enroll(server: url, code: freshCode, deviceName: "bench-daemon")
                let bootstrapping = try DaemonProbe.start(binary: binary, replica: fresh.path)
                let deadline = ContinuousClock.now + .seconds(600)
                while try fresh.status().enquiries < expectedRows, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                }
                let peak = try bootstrapping.sample()
                bootstrapping.stop()
                let cpu = (idleEnd.cpuSeconds - idleStart.cpuSeconds) / idleSeconds * 100
                figures["daemon_idle_rss_mib"] = idleEnd.rssMiB
                figures["daemon_idle_cpu_percent"] = cpu
                figures["daemon_bootstrap_peak_rss_mib"] = peak.peakRSSMiB
                result.append(BenchRow(
                    benchmark: "6 daemon", measure: "peak RSS while bootstrapping \(expectedRows) enquiries", value: peak.peakRSSMiB, unit: "MiB",
                    baselineName: "same daemon idle", baseline: idleEnd.rssMiB, ratio: peak.peakRSSMiB / idleEnd.rssMiB,
                    goal: "streams (≪ data size)", met: peak.peakRSSMiB < idleEnd.rssMiB + 200))
                result.append(BenchRow(
                    benchmark: "6 daemon", measure: "idle CPU over \(Int(idleSeconds)) s", value: cpu, unit: "%",
                    baselineName: "one core", baseline: 100, ratio: cpu / 100, goal: "–", met: nil))
            }
            return (result, figures)
        }
    }

    // MARK: 5. Server under load

    func load() async throws -> ([BenchRow], [String: Double]) {
        let store = try SQLiteServerStore(directory: path("load-server"))
        try await store.saveBranch(id: Self.branch, name: "Harley Street", address: nil, phone: nil)
        let terminals = configuration.loadTerminals
        let changes = configuration.loadChangesPerTerminal
        let directory = configuration.directory
        return try await withRunningServer(ServerConfiguration(port: 0), store: store, logger: Self.quietLogger) { port in
            let url = "http://127.0.0.1:\(port)"
            var engines: [SyncEngine] = []
            for index in 0..<terminals {
                let (_, code) = try await store.issueEnrollmentCode(branch: Self.branch, name: "load-\(index)", role: .terminal)
                let replica = try Replica.open(at: directory + "/load-\(index).sqlite")
                try await replica.enroll(server: url, code: code, deviceName: "load-\(index)")
                engines.append(SyncEngine(replica: replica, transport: HTTPTransport(baseURL: url), logger: Self.quietLogger))
            }
            func stage(round: Int) throws {
                for (index, engine) in engines.enumerated() {
                    // `changes` cells: two enquiries of ten cells each.
                    try engine.replica.enquiries.add(contentsOf: (0..<(changes / 10)).map {
                        NewEnquiry(name: "Test Patient \(round)-\(index)-\($0)", phone: "020 7946 0000", topic: "back pain", message: "Load test")
                    })
                }
            }
            // Baseline: the same syncs one at a time.
            try stage(round: 0)
            var sequentialLatencies: [Double] = []
            let sequential = try await Self.time {
                for engine in engines { sequentialLatencies.append(try await Self.time { _ = try await engine.sync() }) }
            }
            try stage(round: 1)
            var latencies: [Double] = []
            let wall = try await Self.time {
                latencies = try await withThrowingTaskGroup(of: Double.self) { group in
                    for engine in engines { group.addTask { try await Self.time { _ = try await engine.sync() } } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            latencies.sort()
            let pushed = Double(terminals * changes)
            let p50 = latencies[latencies.count / 2], p99 = latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
            let rss = ProcessMemory.peakRSSMiB()
            return ([
                BenchRow(benchmark: "5 load", measure: "in-process: \(terminals) terminals at once, \(changes) changes each + pull", value: pushed / wall, unit: "changes/s",
                         baselineName: "same syncs one at a time", baseline: pushed / sequential, ratio: (pushed / wall) / (pushed / sequential), goal: "–", met: nil),
                BenchRow(benchmark: "5 load", measure: "in-process: p50 / p99 sync latency under load (p50 shown)", value: p50 * 1000, unit: "ms",
                         baselineName: "p50 one at a time", baseline: sequentialLatencies.sorted()[sequentialLatencies.count / 2] * 1000,
                         ratio: p50 / sequentialLatencies.sorted()[sequentialLatencies.count / 2], goal: "–", met: nil),
            ], ["load_p50_ms": p50 * 1000, "load_p99_ms": p99 * 1000, "load_process_peak_rss_mib": rss])
        }
    }
}

/// Reads a process's memory and CPU from /proc.
enum ProcessMemory {
    static func peakRSSMiB(pid: String = "self") -> Double { field("VmHWM", pid: pid) / 1024 }
    static func rssMiB(pid: String = "self") -> Double { field("VmRSS", pid: pid) / 1024 }

    static func field(_ name: String, pid: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
        return line.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) } ?? 0
    }

    static func cpuSeconds(pid: String) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, so utime and stime are the 12th and 13th here.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// `clinic-sync daemon` as a child process, sampled through /proc.
final class DaemonProbe: Sendable {
    struct Sample { var rssMiB: Double; var peakRSSMiB: Double; var cpuSeconds: Double }
    let process: Process

    private init(process: Process) { self.process = process }

    static func start(binary: String, replica: String) throws -> DaemonProbe {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["daemon", "--db", replica, "--interval", "30", "--log-level", "error"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return DaemonProbe(process: process)
    }

    func sample() throws -> Sample {
        let pid = String(process.processIdentifier)
        guard process.isRunning else { throw BenchError("the daemon exited with status \(process.terminationStatus)") }
        return Sample(rssMiB: ProcessMemory.rssMiB(pid: pid), peakRSSMiB: ProcessMemory.peakRSSMiB(pid: pid), cpuSeconds: ProcessMemory.cpuSeconds(pid: pid))
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
