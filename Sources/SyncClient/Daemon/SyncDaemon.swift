import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SyncCore
import UnixSignals

/// Runs a terminal's sync under ServiceLifecycle (and systemd): a cycle on start, then one interval
/// after each success and at once on SIGUSR1 or ``syncNow()``; backs off with per-terminal jitter
/// while offline; reports readiness, status and watchdog pings to systemd; stops between cycles on
/// graceful shutdown. A `429 rate_limited` is no outage: the daemon waits the server's `Retry-After`,
/// then tries again, without counting a failure.
///
/// The wait before the next cycle is restarted after every cycle, so the first success after an
/// outage (timer or signal) puts the daemon straight back on its interval.
///
/// Watchdog pings say "sync is making progress", not "the process exists": they go out while the
/// daemon waits between cycles, and during a cycle only while it moves (a request answered, a page
/// applied) within ``SyncDaemonConfiguration/stallLimit``. A sync that hangs stops the pings, and
/// systemd restarts the daemon after `WatchdogSec`.
public struct SyncDaemon: Service {
    let configuration: SyncDaemonConfiguration
    let notifier: SystemdNotifier
    let logger: Logger
    let sync: @Sendable (_ progress: @escaping @Sendable (SyncProgress) -> Void) async throws -> SyncSummary
    let sleep: @Sendable (Duration) async throws -> Void
    /// Seeds this daemon's jitter: random per process, so terminals do not retry in lockstep.
    let seed: UInt64
    /// Whether SIGUSR1 asks for a sync (off in tests, where a stray signal would end the test run).
    let trapsSignals: Bool
    private let wakes = DaemonWakes()
    private let heartbeat = Heartbeat()

    public init(engine: SyncEngine, configuration: SyncDaemonConfiguration = .init(), notifier: SystemdNotifier = .init(), logger: Logger) {
        var generator = SystemRandomNumberGenerator()
        self.init(configuration: configuration, notifier: notifier, logger: logger, seed: generator.next(), trapsSignals: true,
                  sleep: { try await Task.sleep(for: $0) }, sync: { try await engine.syncRecordingOutcome(daemon: getpid(), progress: $0) })
    }

    /// A daemon on an injected clock (`sleep`), jitter seed and sync action: for tests and the simulator.
    package init(
        configuration: SyncDaemonConfiguration, notifier: SystemdNotifier = .init(environment: [:]), logger: Logger, seed: UInt64,
        trapsSignals: Bool = false, sleep: @escaping @Sendable (Duration) async throws -> Void,
        sync: @escaping @Sendable (_ progress: @escaping @Sendable (SyncProgress) -> Void) async throws -> SyncSummary
    ) {
        self.configuration = configuration
        self.notifier = notifier
        self.logger = logger
        self.seed = seed
        self.trapsSignals = trapsSignals
        self.sleep = sleep
        self.sync = sync
    }

    /// Asks for a sync as soon as the current one (if any) ends, as SIGUSR1 does.
    public func syncNow() {
        wakes.post(.signal)
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                if trapsSignals {
                    group.addTask {
                        for await _ in await UnixSignalsSequence(trapping: .sigusr1) { wakes.post(.signal) }
                    }
                }
                if let interval = notifier.watchdogInterval {
                    // Without a configured limit: no progress for as long as systemd's own WatchdogSec.
                    let stallLimit = configuration.stallLimit ?? interval * 2
                    group.addTask {
                        var withheld = false
                        while !Task.isCancelled {
                            if let stalled = heartbeat.stalled(longerThan: stallLimit) {
                                if !withheld {
                                    logger.error("sync stalled: no progress, withholding watchdog pings so systemd restarts the daemon",
                                                 metadata: ["stalled_s": "\(stalled.components.seconds)"])
                                    notifier.status("sync stalled for \(stalled.components.seconds) s")
                                }
                                withheld = true
                            } else {
                                notifier.watchdog()
                                withheld = false
                            }
                            guard (try? await Task.sleep(for: interval)) != nil else { return }
                        }
                    }
                }
                notifier.ready(status: "starting first sync")
                var generator = SplitMix64(seed: seed)
                var failures = 0
                var reason = DaemonWake.start
                while reason != .stop, !Task.isCancelled, !Task.isShuttingDownGracefully {
                    let outcome = await cycle(reason: reason, failures: failures)
                    failures = outcome.failures
                    reason = await wait(outcome.retryAfter ?? configuration.delay(afterFailures: failures, using: &generator))
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            notifier.stopping()
            wakes.post(.stop)
        }
    }

    /// Sleeps `delay` unless a sync request or a stop comes first.
    func wait(_ delay: Duration) async -> DaemonWake {
        await withTaskGroup(of: DaemonWake?.self) { group in
            group.addTask { (try? await sleep(delay)) == nil ? nil : .timer }
            group.addTask { await wakes.next() }
            let first = await group.next() ?? nil
            group.cancelAll()
            // Nil: cancelled, so the whole daemon is being cancelled.
            return first ?? .stop
        }
    }

    /// What one cycle leaves for the next wait.
    struct CycleOutcome: Equatable {
        /// Consecutive failures so far (0 after a success).
        var failures: Int
        /// Set when the server asked this device to wait (429): the wait before the next try, instead of the backoff.
        var retryAfter: Duration?
    }

    /// One sync; returns the new count of consecutive failures, and the server's `Retry-After` if it gave one.
    func cycle(reason: DaemonWake, failures: Int) async -> CycleOutcome {
        heartbeat.begin()
        defer { heartbeat.end() }
        do {
            let summary = try await sync { [heartbeat] _ in heartbeat.beat() }
            let status = "synced: \(summary.pushed) sent, \(summary.pulled) received, \(summary.openConflicts) open conflicts"
            notifier.status(status)
            logger.info("sync", metadata: [
                "trigger": "\(reason)", "pushed": "\(summary.pushed)", "rejected": "\(summary.rejected)", "pulled": "\(summary.pulled)",
                "bytes": "\(summary.bytesSent + summary.bytesReceived)", "open_conflicts": "\(summary.openConflicts)",
            ])
            if failures > 0 { logger.notice("sync recovered", metadata: ["after_failures": "\(failures)"]) }
            return CycleOutcome(failures: 0)
        } catch let error as SyncError where error.code == .rateLimited {
            // The server is up and answering; it only asks this device to slow down. Not counted as a failure,
            // so the backoff neither grows nor resets.
            let wait = error.retryAfter ?? .seconds(1)
            logger.notice("sync rate limited by the server; waiting as asked", metadata: ["retry_after_s": "\(wait.components.seconds)"])
            notifier.status("rate limited by the server; retrying in \(wait.components.seconds) s")
            return CycleOutcome(failures: failures, retryAfter: wait)
        } catch let error as SyncError {
            let level: Logger.Level = error.code == .offline ? .notice : .error
            logger.log(level: level, "sync failed", metadata: ["code": "\(error.code.rawValue)", "detail": "\(error.detail)", "failures": "\(failures + 1)"])
            notifier.status("sync failed (\(error.code.rawValue)); retrying with backoff")
            return CycleOutcome(failures: failures + 1)
        } catch {
            logger.error("sync failed", metadata: ["error_type": "\(type(of: error))", "failures": "\(failures + 1)"])
            notifier.status("sync failed; retrying with backoff")
            return CycleOutcome(failures: failures + 1)
        }
    }
}

/// When the current sync cycle last moved; nil between cycles. Read by the watchdog task.
final class Heartbeat: Sendable {
    private let lastMove = Mutex<ContinuousClock.Instant?>(nil)

    func begin() { beat() }
    func beat() { lastMove.withLock { $0 = .now } }
    func end() { lastMove.withLock { $0 = nil } }

    /// How long the running cycle has not moved, if longer than `limit`.
    func stalled(longerThan limit: Duration) -> Duration? {
        lastMove.withLock { last in
            guard let last else { return nil }
            let quiet = ContinuousClock.now - last
            return quiet > limit ? quiet : nil
        }
    }
}
