import Foundation
import Logging
import ServiceLifecycle
@testable import SyncClient
import SyncCore
import Synchronization
import Testing

@Suite("Sync daemon")
struct DaemonTests {
    @Test func backoffDoublesWithJitterAndIsCapped() {
        let configuration = SyncDaemonConfiguration(interval: .seconds(30), initialBackoff: .seconds(2), maxBackoff: .seconds(60))
        var generator = SplitMix64(seed: 7)
        #expect(configuration.delay(afterFailures: 0, using: &generator) == .seconds(30))
        for failures in 1...12 {
            let nominal = min(Duration.seconds(2) * (1 << (failures - 1)), .seconds(60))
            let delay = configuration.delay(afterFailures: failures, using: &generator)
            #expect(delay >= nominal * 0.5 && delay <= nominal, "failure \(failures): \(delay)")
        }
    }

    @Test func backoffIsCappedAtTheIntervalByDefault() {
        let configuration = SyncDaemonConfiguration(interval: .seconds(5), initialBackoff: .seconds(1))
        var generator = SplitMix64(seed: 3)
        for failures in 1...40 {
            #expect(configuration.delay(afterFailures: failures, using: &generator) <= .seconds(5), "failure \(failures)")
        }
    }

    /// One sync attempt the daemon made, at virtual time `at`.
    struct Attempt: Equatable {
        var at: Duration
        var succeeded: Bool
    }

    /// Runs a daemon on virtual time against a server that is down during `outage`, until `end`.
    /// `poke`, called whenever the daemon waits, may call ``SyncDaemon/syncNow()`` and return true;
    /// time then stands still until the daemon waits again.
    static func attempts(
        configuration: SyncDaemonConfiguration, seed: UInt64, outage: @escaping @Sendable () -> Range<Duration>, until end: Duration,
        poke: @escaping @Sendable (SyncDaemon, TestClock) -> Bool = { _, _ in false }
    ) async -> [Attempt] {
        let clock = TestClock()
        let log = Log()
        let daemon = SyncDaemon(configuration: configuration, logger: Harness.logger, seed: seed, sleep: { try await clock.sleep($0) }) { _ in
            let now = clock.now
            let up = !outage().contains(now)
            log.append(Attempt(at: now, succeeded: up))
            guard up else { throw SyncError.offline("virtual outage") }
            return SyncSummary()
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await daemon.run() }
            var sleeps = 0
            while clock.now < end {
                sleeps = await clock.waitForSleeps(after: sleeps)
                if poke(daemon, clock) { continue }
                clock.advanceToNextDeadline()
            }
            group.cancelAll()
        }
        return log.all
    }

    @Test(arguments: [17, 95, 600, 7_200])
    func theFirstSyncAfterAnOutageComesWithinOneIntervalAndThenOnTheInterval(outageSeconds: Int) async throws {
        let interval = Duration.seconds(5)
        let returns = Duration.seconds(12 + outageSeconds)
        let attempts = await Self.attempts(
            configuration: SyncDaemonConfiguration(interval: interval, initialBackoff: .seconds(1)), seed: 42,
            outage: { Duration.seconds(12)..<returns }, until: returns + .seconds(60))
        #expect(attempts.first == Attempt(at: .zero, succeeded: true), "a sync at start")
        #expect(attempts.contains { !$0.succeeded }, "the outage was noticed")
        let after = attempts.filter { $0.at >= returns }
        let first = try #require(after.first)
        #expect(first.succeeded)
        #expect(first.at - returns <= interval, "first sync at \(first.at), the server returned at \(returns)")
        let times = after.map(\.at)
        #expect(after.count >= 10 && after.allSatisfy { $0.succeeded })
        #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == interval }, "then on the interval: \(times)")
    }

    @Test func retriesAreJitteredPerTerminal() async {
        let configuration = SyncDaemonConfiguration(interval: .seconds(5), initialBackoff: .seconds(1))
        let a = await Self.attempts(configuration: configuration, seed: 1, outage: { Duration.seconds(12)..<Duration.seconds(120) }, until: .seconds(120))
        let b = await Self.attempts(configuration: configuration, seed: 2, outage: { Duration.seconds(12)..<Duration.seconds(120) }, until: .seconds(120))
        let failuresA = a.filter { !$0.succeeded }.map(\.at), failuresB = b.filter { !$0.succeeded }.map(\.at)
        #expect(failuresA.count > 10 && failuresB.count > 10)
        #expect(Set(failuresA).intersection(failuresB).count <= 1, "two terminals retried in lockstep: \(failuresA) \(failuresB)")
        let gaps = Set(zip(failuresA.dropFirst(4), failuresA.dropFirst(5)).map { $1 - $0 })
        #expect(gaps.count > 1, "retries at the backoff cap are jittered, not fixed: \(gaps)")
    }

    @Test func syncNowDuringALongBackoffSyncsAtOnceAndResumesTheInterval() async throws {
        // The server returns in the middle of a long backoff; the operator signals the daemon (SIGUSR1).
        let interval = Duration.seconds(5)
        let returns = Returns()
        let attempts = await Self.attempts(
            configuration: SyncDaemonConfiguration(interval: interval, initialBackoff: .seconds(1), maxBackoff: .seconds(120)), seed: 7,
            outage: { Duration.seconds(12)..<(returns.at ?? Duration.seconds(1_000_000)) }, until: .seconds(600)
        ) { daemon, clock in
            guard returns.at == nil, clock.now > .seconds(200), let deadline = clock.nextDeadline, deadline - clock.now > interval * 3 else { return false }
            returns.at = clock.now + interval
            clock.advance(to: clock.now + interval)
            daemon.syncNow()
            return true
        }
        let back = try #require(returns.at, "the test reached a long backoff")
        let after = attempts.filter { $0.at >= back }
        #expect(after.first == Attempt(at: back, succeeded: true), "the signalled sync ran at once")
        #expect(after.allSatisfy { $0.succeeded })
        let times = after.map(\.at)
        #expect(times.count >= 30)
        #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == interval }, "then on the interval: \(times)")
    }

    /// A `429 rate_limited` is no outage: the daemon waits the server's Retry-After (not its backoff,
    /// not its interval), counts no failure, and is back on its interval after the next success.
    @Test func aRateLimitedSyncWaitsRetryAfterAndCountsNoFailure() async throws {
        let interval = Duration.seconds(5)
        let clock = TestClock()
        let log = Log()
        let configuration = SyncDaemonConfiguration(interval: interval, initialBackoff: .seconds(1))
        let daemon = SyncDaemon(configuration: configuration, logger: Harness.logger, seed: 9, sleep: { try await clock.sleep($0) }) { _ in
            let now = clock.now
            // Refused twice in a row at 5 s, as a server under load would: 17 s, then 3 s.
            let refusals = log.all.filter { !$0.succeeded }.count
            let limited = now >= interval && refusals < 2
            log.append(Attempt(at: now, succeeded: !limited))
            guard limited else { return SyncSummary() }
            let response = TransportResponse(
                status: 429, contentType: "application/problem+json",
                body: Array(#"{"code":"rate_limited","detail":"retry after 17 s","status":429}"#.utf8),
                headers: [ProtocolHeader.retryAfter: refusals == 0 ? "17" : "3"])
            throw SyncEngine.error(from: response)
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await daemon.run() }
            var sleeps = 0
            while clock.now < .seconds(60) {
                sleeps = await clock.waitForSleeps(after: sleeps)
                clock.advanceToNextDeadline()
            }
            group.cancelAll()
        }
        let attempts = log.all
        try #require(attempts.count >= 6, "\(attempts)")
        #expect(Array(attempts.prefix(4)) == [
            Attempt(at: .zero, succeeded: true), Attempt(at: .seconds(5), succeeded: false),
            Attempt(at: .seconds(22), succeeded: false), Attempt(at: .seconds(25), succeeded: true),
        ], "Retry-After, not the 1 s backoff: \(attempts)")
        let times = attempts.dropFirst(3).map(\.at)
        #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == interval }, "then on the interval: \(times)")
    }

    @Test func a429MapsToRateLimitedWithRetryAfter() {
        let problem = Array(#"{"code":"rate_limited","detail":"slow down","status":429}"#.utf8)
        let error = SyncEngine.error(from: TransportResponse(status: 429, contentType: "application/problem+json", body: problem,
                                                            headers: [ProtocolHeader.retryAfter: "7"]))
        #expect(error.code == .rateLimited && error.problem == "rate_limited" && error.retryAfter == .seconds(7))
        #expect(error.code != .offline)
        // A proxy's bare 429 without a readable header: still rate limited, and the daemon waits a second, not zero.
        let bare = SyncEngine.error(from: TransportResponse(status: 429, contentType: "text/plain", body: Array("slow".utf8)))
        #expect(bare.code == .rateLimited && bare.retryAfter == .seconds(1))
        #expect(retryAfterSeconds("86400") == 3_600, "capped at an hour")
        #expect(retryAfterSeconds("Sun, 29 Nov 2026 15:00:10 GMT", now: Date(timeIntervalSince1970: 1_795_964_400)) == 10)
    }

    /// A datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
    final class NotifySocket {
        let path = NSTemporaryDirectory() + "notify-\(UUID().uuidString.prefix(8)).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)

        init() throws {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            try #require(bound == 0)
        }

        deinit { close(fd); unlink(path) }

        /// Every message received so far, without waiting.
        func drain() -> [String] {
            var messages: [String] = []
            var buffer = [UInt8](repeating: 0, count: 512)
            while case let received = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)), received > 0 {
                messages.append(String(decoding: buffer.prefix(received), as: UTF8.self))
            }
            return messages
        }
    }

    @Test func notifiesSystemdOverItsSocket() throws {
        let socket = try NotifySocket()
        let (fd, path) = (socket.fd, socket.path)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"])
        #expect(notifier.isActive && notifier.watchdogInterval == .seconds(5))
        notifier.ready(status: "starting first sync")
        var buffer = [UInt8](repeating: 0, count: 256)
        let received = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(received > 0)
        #expect(String(decoding: buffer.prefix(max(received, 0)), as: UTF8.self) == "READY=1\nSTATUS=starting first sync")
        #expect(!SystemdNotifier(environment: [:]).isActive)
    }

    /// Issue 13: pings mean "sync makes progress". A cycle that hangs stops them, so systemd's
    /// `WatchdogSec` restarts the daemon; cycles that move, and the waits between them, keep them going.
    @Test func aHungSyncStopsTheWatchdogPings() async throws {
        let socket = try NotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "100000"])
        let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
        let cycles = Mutex(0)
        let daemon = SyncDaemon(
            configuration: .init(interval: .milliseconds(20), stallLimit: .milliseconds(200)), notifier: notifier, logger: Harness.logger,
            seed: 1, sleep: { try await Task.sleep(for: $0) }
        ) { progress in
            let cycle = cycles.withLock { $0 += 1; return $0 }
            guard cycle >= 3 else {
                progress(SyncProgress(pushed: 0, pending: 0, pulled: 1, pages: 1, bytesSent: 0, bytesReceived: 0))
                return SyncSummary()
            }
            startedContinuation.yield()
            try await Task.sleep(for: .seconds(3_600))  // a request that never answers
            return SyncSummary()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await daemon.run() }
            for await _ in started { break }
            // Messages come from one task, in order: once it has said "stalled", no check may ping again.
            var messages: [String] = []
            let deadline = ContinuousClock.now + .seconds(60)
            while !messages.contains(where: { $0.hasPrefix("STATUS=sync stalled") }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                messages += socket.drain()
            }
            let stalledAt = try #require(messages.firstIndex { $0.hasPrefix("STATUS=sync stalled") }, "\(messages)")
            #expect(messages[..<stalledAt].contains("WATCHDOG=1"), "pinged while healthy: \(messages)")
            try await Task.sleep(for: .milliseconds(500))
            let later = messages[(stalledAt + 1)...] + socket.drain()
            #expect(!later.contains("WATCHDOG=1"), "no pings while the sync hangs: \(later)")
            group.cancelAll()
        }
    }

    @Test func syncsOnStartAndStopsGracefully() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            try a.replica.enquiries.add(NewEnquiry(name: "Test Patient", phone: "020 7946 0000"))
            let daemon = SyncDaemon(engine: a.engine, configuration: .init(interval: .milliseconds(200)), notifier: SystemdNotifier(environment: [:]), logger: Harness.logger)
            let group = ServiceGroup(configuration: .init(services: [daemon], logger: Harness.logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // A bound on waiting, not a timing assertion: generous, since CI machines may be loaded.
                let deadline = ContinuousClock.now + .seconds(120)
                while try a.replica.status().pendingChanges > 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(try a.replica.status().pendingChanges == 0, "the daemon pushed the outbox")
                try b.replica.enquiries.add(NewEnquiry(name: "Another Patient", phone: "020 7946 0001"))
                try await b.sync()
                while try a.replica.enquiries.list().count < 2 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(try a.replica.enquiries.list().count == 2, "the daemon keeps pulling on its interval")
                let stopping = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                #expect(ContinuousClock.now - stopping < .seconds(30), "graceful stop between cycles, not after a timeout")
            }
        }
    }
}

/// Attempts recorded from the daemon's sync action.
final class Log: @unchecked Sendable {
    private let lock = NSLock()
    private var attempts: [DaemonTests.Attempt] = []
    func append(_ attempt: DaemonTests.Attempt) { lock.withLock { attempts.append(attempt) } }
    var all: [DaemonTests.Attempt] { lock.withLock { attempts } }
    var count: Int { lock.withLock { attempts.count } }
}

/// When the virtual server came back.
final class Returns: @unchecked Sendable {
    private let lock = NSLock()
    private var time: Duration?
    var at: Duration? {
        get { lock.withLock { time } }
        set { lock.withLock { time = newValue } }
    }
}
