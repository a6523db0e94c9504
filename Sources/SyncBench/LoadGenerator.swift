import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import Synchronization
import SyncClient
import SyncCore
import SyncServer

/// What `clinic-sync loadgen` runs: protocol-level terminals against a server in another process.
public struct LoadConfiguration: Sendable {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    public var server: String
    /// The server's data folder: branches and enrollment codes are made there, as `admin` does.
    public var data: String
    public var terminals: Int
    /// Changes (cells) each busy terminal pushes per sync; ten make one new enquiry.
    public var changesPerSync = 20
    /// Seconds of load, after enrollment.
    public var duration: Double = 30
    public var branches = 1
    /// Seconds between an idle terminal's pulls.
    public var pullInterval: Double = 30
    /// How many terminals push; nil: all of them. The others only pull.
    public var busy: Int?
    /// The server's process, for its RSS and CPU; nil: found from the URL's port.
    public var serverPID: Int32?
    /// Cells asked per pull page.
    public var pageLimit: UInt32 = 2_000
    /// Enrollments over HTTP at once.
    public var enrollConcurrency = 16

    public init(server: String, data: String, terminals: Int) {
        self.server = server
        self.data = data
        self.terminals = terminals
    }

    var busyCount: Int { min(terminals, busy ?? terminals) }
}

/// Latency percentiles of one kind of request, in milliseconds.
public struct LatencySummary: Codable, Sendable {
    public var count: UInt64
    public var p50: Double
    public var p95: Double
    public var p99: Double
    public var max: Double
    public var mean: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        // Recorded in microseconds.
        func ms(_ value: UInt64) -> Double { Double(value) / 1000 }
        p50 = count == 0 ? 0 : ms(histogram.valueAtPercentile(50))
        p95 = count == 0 ? 0 : ms(histogram.valueAtPercentile(95))
        p99 = count == 0 ? 0 : ms(histogram.valueAtPercentile(99))
        max = count == 0 ? 0 : ms(histogram.max)
        mean = count == 0 ? 0 : histogram.mean / 1000
    }
}

/// The server process as /proc shows it.
public struct ServerProcessFigures: Codable, Sendable {
    public var pid: Int32
    /// RSS when the load ended, and the highest seen while sampling each second.
    public var rssMiB: Double
    public var maxSampledRSSMiB: Double
    /// The kernel's high-water mark since the server started (enrollment included).
    public var peakRSSMiB: Double
    /// CPU over the load window, in percent of one core (200 % is both cores of this machine).
    public var cpuPercent: Double
}

/// What one load run measured.
public struct LoadReport: Codable, Sendable {
    public var terminals: Int
    public var busy: Int
    public var branches: Int
    public var changesPerSync: Int
    public var pullIntervalSeconds: Double
    public var enrollSeconds: Double
    /// The load window, from the first request to the last answer.
    public var seconds: Double
    public var requests: UInt64
    public var pushes: UInt64
    /// Requests that pushed nothing.
    public var pulls: UInt64
    public var acceptedChanges: UInt64
    public var rejectedChanges: UInt64
    public var pulledCells: UInt64
    public var acceptedChangesPerSecond: Double
    public var requestsPerSecond: Double
    public var pullsPerSecond: Double
    /// Every answered request; pushes; pulls.
    public var latency: LatencySummary
    public var pushLatency: LatencySummary
    public var pullLatency: LatencySummary
    /// Failed requests by `status problem_code`, or `transport <problem>` when there was no answer.
    public var errors: [String: Int]
    public var server: ServerProcessFigures?

    /// A few lines for people.
    public var text: String {
        func line(_ name: String, _ summary: LatencySummary) -> String {
            "\(name) \(summary.count): " + String(format: "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms", summary.p50, summary.p95, summary.p99, summary.max)
        }
        var lines = [
            "\(terminals) terminals (\(busy) pushing \(changesPerSync) changes per sync, \(terminals - busy) pulling every \(pullIntervalSeconds.formatted()) s), \(branches) branch\(branches == 1 ? "" : "es"); enrolled in \(String(format: "%.1f", enrollSeconds)) s",
            String(format: "%.1f s: %.0f accepted changes/s, %.1f requests/s, %.1f pulls/s, %llu pulled cells", seconds, acceptedChangesPerSecond, requestsPerSecond, pullsPerSecond, pulledCells),
            line("all", latency), line("pushes", pushLatency), line("pulls", pullLatency),
            errors.isEmpty ? "errors: none" : "errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", "),
        ]
        if let server {
            lines.append(String(format: "server pid %d: RSS %.1f MiB at the end, %.1f MiB max sampled, %.1f MiB peak; CPU %.0f %% of a core",
                                server.pid, server.rssMiB, server.maxSampledRSSMiB, server.peakRSSMiB, server.cpuPercent))
        }
        return lines.joined(separator: "\n")
    }
}

/// Runs protocol-level terminals over real HTTP: real frames, real deflate, each terminal with its own
/// token, cursor, clock and outbox counter, storing nothing, so that thousands fit in one process and
/// the figures are the server's.
public struct LoadGenerator: Sendable {
    public let configuration: LoadConfiguration
    let say: @Sendable (String) -> Void

    public init(configuration: LoadConfiguration, say: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.say = say
    }

    struct Terminal: Sendable {
        var token: String
        var replica: ReplicaID
        var branch: String
        var counter: UInt64 = 0
        var cursor: UInt64 = 0
        var clock: HybridLogicalClock
    }

    public func run() async throws -> LoadReport {
        let configuration = configuration
        var pool = HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(120)), decompression: .disabled)
        // One connection per terminal, as real terminals have: the default pool of 8 would queue requests
        // in this process and count that queue as server latency.
        pool.connectionPool = .init(idleTimeout: .seconds(max(120, Int64(configuration.pullInterval * 4))),
                                    concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.terminals))
        pool.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: pool)
        do {
            let report = try await run(client: client)
            try await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func run(client: HTTPClient) async throws -> LoadReport {
        let configuration = configuration
        let transport = HTTPTransport(baseURL: configuration.server, timeout: .seconds(120), client: client)
        let enrollStarted = ContinuousClock.now
        say("enrolling \(configuration.terminals) terminals at \(configuration.branches) branches")
        let terminals = try await enroll(transport: transport)
        let enrollSeconds = (ContinuousClock.now - enrollStarted).seconds

        let pid = configuration.serverPID ?? Self.serverPID(url: configuration.server)
        let stats = LoadStats()
        let sampler = pid.map { ServerSampler(pid: $0) }
        say("load for \(configuration.duration.formatted()) s")
        let started = ContinuousClock.now
        let cpuBefore = pid.map { ProcessMemory.cpuSeconds(pid: String($0)) } ?? 0
        let deadline = started + .milliseconds(Int64(configuration.duration * 1000))
        let templates = Dictionary(uniqueKeysWithValues: (1...configuration.branches).map { index in
            let branch = Self.branchID(index)
            return (branch, SyntheticEnquiries.generate(count: 1, seed: UInt64(index), branches: [branch])[0].cells)
        })
        await withTaskGroup(of: Void.self) { group in
            if let sampler { group.addTask { await sampler.run(until: deadline) } }
            for (index, terminal) in terminals.enumerated() {
                let busy = index < configuration.busyCount
                // Idle terminals start spread over one interval, as daemons started at different times are.
                let phase = busy ? 0 : configuration.pullInterval * Double(index - configuration.busyCount) / Double(max(1, configuration.terminals - configuration.busyCount))
                group.addTask {
                    var terminal = terminal
                    if busy {
                        await Self.push(&terminal, cells: templates[terminal.branch] ?? [], configuration: configuration, transport: transport,
                                        stats: stats, until: deadline)
                    } else {
                        await Self.pull(&terminal, phase: phase, configuration: configuration, transport: transport, stats: stats, until: deadline)
                    }
                }
            }
        }
        let seconds = (ContinuousClock.now - started).seconds
        let server = pid.map { pid in
            let id = String(pid)
            return ServerProcessFigures(
                pid: pid, rssMiB: ProcessMemory.rssMiB(pid: id), maxSampledRSSMiB: max(sampler?.maxRSS ?? 0, ProcessMemory.rssMiB(pid: id)),
                peakRSSMiB: ProcessMemory.peakRSSMiB(pid: id), cpuPercent: (ProcessMemory.cpuSeconds(pid: id) - cpuBefore) / seconds * 100)
        }
        return stats.report(configuration: configuration, seconds: seconds, enrollSeconds: enrollSeconds, server: server)
    }

    static func branchID(_ index: Int) -> String { "load-\(index)" }

    /// Branches `load-1` … `load-B` and one device per terminal, made in the store as `admin` does, then
    /// enrolled over HTTP with real enroll frames.
    func enroll(transport: HTTPTransport) async throws -> [Terminal] {
        let configuration = configuration
        let store = try SQLiteServerStore(directory: configuration.data, creating: false)
        for index in 1...configuration.branches {
            try await store.saveBranch(id: Self.branchID(index), name: "Load test \(index)", address: nil, phone: nil)
        }
        let run = UUID().uuidString.prefix(8).lowercased()
        var codes: [String] = []
        for index in 0..<configuration.terminals {
            let (_, code) = try await store.issueEnrollmentCode(
                branch: Self.branchID(index % configuration.branches + 1), name: "loadgen-\(run)-\(index)", role: .terminal)
            codes.append(code)
        }
        return try await withThrowingTaskGroup(of: (Int, Terminal).self) { group in
            var terminals = [Terminal?](repeating: nil, count: codes.count)
            var next = 0
            func start() {
                guard next < codes.count else { return }
                let (index, code) = (next, codes[next])
                next += 1
                group.addTask {
                    let body = Deflate.compress(FrameCodec.encode(EnrollRequest(code: code, deviceName: "loadgen-\(run)-\(index)")))
                    let response = try await transport.post("/v1/enroll", body: body, token: nil)
                    guard response.status == 200 else {
                        throw BenchError("enrollment answered \(response.status) \(Self.problemCode(response.body) ?? "")")
                    }
                    let enrolled = try FrameCodec.decode(Deflate.decompress(response.body, limits: Self.answerLimits), as: EnrollResponse.self)
                    var clock = HybridLogicalClock()
                    try? clock.receive(enrolled.clock, wall: SystemWallClock().milliseconds())
                    return (index, Terminal(token: enrolled.token, replica: enrolled.replica, branch: enrolled.branch, clock: clock))
                }
            }
            for _ in 0..<configuration.enrollConcurrency { start() }
            while let (index, terminal) = try await group.next() {
                terminals[index] = terminal
                start()
            }
            return terminals.compactMap { $0 }
        }
    }

    static let answerLimits = InflateLimits(maxCompressedBytes: 64 << 20, maxInflatedBytes: 64 << 20, maxRatio: .max)

    /// A busy terminal: a sync pushing new enquiries after another, until the deadline.
    static func push(_ terminal: inout Terminal, cells template: [CellWrite], configuration: LoadConfiguration, transport: HTTPTransport,
                     stats: LoadStats, until deadline: ContinuousClock.Instant) async {
        while ContinuousClock.now < deadline {
            var changes: [PushedChange] = []
            let wall = SystemWallClock().milliseconds()
            while changes.count < configuration.changesPerSync {
                // One local transaction per enquiry: one clock reading, as the terminal app writes it.
                let hlc = terminal.clock.tick(wall: wall)
                let row = UUID().uuidString.lowercased()
                for cell in template.prefix(configuration.changesPerSync - changes.count) {
                    terminal.counter += 1
                    changes.append(PushedChange(counter: terminal.counter, change: Change(
                        table: .enquiry, row: row, operation: .write(column: cell.column, value: cell.value, baseSeq: 0),
                        version: Version(hlc: hlc, replica: terminal.replica))))
                }
            }
            await sync(&terminal, changes: changes, configuration: configuration, transport: transport, stats: stats)
        }
    }

    /// An idle terminal: every interval, pull until nothing more is waiting.
    static func pull(_ terminal: inout Terminal, phase: Double, configuration: LoadConfiguration, transport: HTTPTransport,
                     stats: LoadStats, until deadline: ContinuousClock.Instant) async {
        var next = ContinuousClock.now + .milliseconds(Int64(phase * 1000))
        while true {
            guard next < deadline, (try? await Task.sleep(until: next, clock: .continuous)) != nil else { return }
            next = next + .milliseconds(Int64(configuration.pullInterval * 1000))
            var more = true
            while more, ContinuousClock.now < deadline {
                more = await sync(&terminal, changes: [], configuration: configuration, transport: transport, stats: stats)
            }
        }
    }

    /// One request. Returns whether the server has more to pull. Waits out a `429` as the daemon does,
    /// and a failure for a second, so that a broken server is not hammered.
    @discardableResult
    static func sync(_ terminal: inout Terminal, changes: [PushedChange], configuration: LoadConfiguration, transport: HTTPTransport,
                     stats: LoadStats) async -> Bool {
        let request = SyncRequest(replica: terminal.replica, clock: terminal.clock.last, cursor: terminal.cursor,
                                  pageLimit: configuration.pageLimit, changes: changes)
        let body = Deflate.compress(FrameCodec.encode(request))
        let started = ContinuousClock.now
        do {
            let response = try await transport.post("/v1/sync", body: body, token: terminal.token,
                                                    headers: [ProtocolHeader.pending: "0", ProtocolHeader.appVersion: BuildInfo.version])
            guard response.status == 200 else {
                stats.failed("\(response.status) \(problemCode(response.body) ?? "-")")
                // Bounded: a header of 2^62 would trap when made milliseconds.
                let wait = response.status == 429 ? Double(min(3_600, max(1, response.headers[ProtocolHeader.retryAfter].flatMap { Int($0) } ?? 1))) : 1
                try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
                return false
            }
            let page = try FrameCodec.decode(Deflate.decompress(response.body, limits: answerLimits), as: SyncResponse.self)
            let elapsed = ContinuousClock.now - started
            let acknowledged = changes.filter { $0.counter <= page.acknowledged }.count
            stats.answered(elapsed, pushed: !changes.isEmpty, accepted: acknowledged - page.rejected.count, rejected: page.rejected.count,
                           pulled: page.changes.count)
            terminal.cursor = page.cursor
            try? terminal.clock.receive(page.clock, wall: SystemWallClock().milliseconds())
            return page.more
        } catch let error as SyncError {
            stats.failed("transport \(error.problem ?? error.code.rawValue)")
        } catch {
            stats.failed("bad answer \(type(of: error))")
        }
        try? await Task.sleep(for: .seconds(1))
        return false
    }

    static func problemCode(_ body: [UInt8]) -> String? {
        struct Problem: Decodable { var code: String }
        return (try? JSONDecoder().decode(Problem.self, from: Data(body)))?.code
    }

    /// The process listening on the URL's port on this machine, from /proc/net/tcp{,6} and each process's fds.
    static func serverPID(url: String) -> Int32? {
        guard let port = URLComponents(string: url)?.port else { return nil }
        var inodes: Set<String> = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; the inode is field 9.
                guard fields.count > 9, fields[3] == "0A", let local = fields[1].split(separator: ":").last,
                      Int(local, radix: 16) == port else { continue }
                inodes.insert("socket:[\(fields[9])]")
            }
        }
        guard !inodes.isEmpty else { return nil }
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in processes where Int32(pid) != nil {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            for fd in fds {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"), inodes.contains(target) {
                    return Int32(pid)
                }
            }
        }
        return nil
    }
}

/// Counts and latencies from every terminal task, behind one lock: a few thousand updates a second.
final class LoadStats: Sendable {
    struct State {
        var all = LoadStats.histogram(), pushes = LoadStats.histogram(), pulls = LoadStats.histogram()
        var pushCount: UInt64 = 0, pullCount: UInt64 = 0
        var accepted: UInt64 = 0, rejected: UInt64 = 0, pulled: UInt64 = 0
        var errors: [String: Int] = [:]
    }

    private let state = Mutex(State())

    /// Microseconds from 1 µs to 10 minutes, three significant digits.
    static func histogram() -> Histogram<UInt64> {
        Histogram(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    func answered(_ elapsed: Duration, pushed: Bool, accepted: Int, rejected: Int, pulled: Int) {
        let micros = UInt64(max(1, elapsed.seconds * 1_000_000))
        state.withLock { state in
            _ = state.all.record(micros)
            if pushed {
                _ = state.pushes.record(micros)
                state.pushCount += 1
            } else {
                _ = state.pulls.record(micros)
                state.pullCount += 1
            }
            state.accepted += UInt64(max(0, accepted))
            state.rejected += UInt64(max(0, rejected))
            state.pulled += UInt64(pulled)
        }
    }

    func failed(_ key: String) {
        state.withLock { $0.errors[key, default: 0] += 1 }
    }

    func report(configuration: LoadConfiguration, seconds: Double, enrollSeconds: Double, server: ServerProcessFigures?) -> LoadReport {
        state.withLock { state in
            LoadReport(
                terminals: configuration.terminals, busy: configuration.busyCount, branches: configuration.branches,
                changesPerSync: configuration.changesPerSync, pullIntervalSeconds: configuration.pullInterval, enrollSeconds: enrollSeconds,
                seconds: seconds, requests: state.pushCount + state.pullCount, pushes: state.pushCount, pulls: state.pullCount,
                acceptedChanges: state.accepted, rejectedChanges: state.rejected, pulledCells: state.pulled,
                acceptedChangesPerSecond: Double(state.accepted) / seconds, requestsPerSecond: Double(state.pushCount + state.pullCount) / seconds,
                pullsPerSecond: Double(state.pullCount) / seconds, latency: LatencySummary(state.all), pushLatency: LatencySummary(state.pushes),
                pullLatency: LatencySummary(state.pulls), errors: state.errors, server: server)
        }
    }
}

/// Samples the server's RSS each second while the load runs.
final class ServerSampler: Sendable {
    let pid: Int32
    private let highest = Mutex(0.0)

    init(pid: Int32) { self.pid = pid }

    var maxRSS: Double { highest.withLock { $0 } }

    func run(until deadline: ContinuousClock.Instant) async {
        while ContinuousClock.now < deadline {
            let rss = ProcessMemory.rssMiB(pid: String(pid))
            highest.withLock { $0 = max($0, rss) }
            guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
        }
    }
}
