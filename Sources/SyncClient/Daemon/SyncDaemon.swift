import Foundation
import Logging
import ServiceLifecycle
import SyncCore
import UnixSignals

/// How the daemon paces itself.
public struct SyncDaemonConfiguration: Sendable {
    /// Time between syncs while the server answers.
    public var interval: Duration = .seconds(30)
    /// The first retry delay after a failure; doubles per failure up to `maxBackoff`.
    public var initialBackoff: Duration = .seconds(2)
    public var maxBackoff: Duration = .seconds(300)

    public init(interval: Duration = .seconds(30), initialBackoff: Duration = .seconds(2), maxBackoff: Duration = .seconds(300)) {
        self.interval = interval
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The delay before the next attempt after `failures` consecutive failures, jittered into
    /// [50%, 100%] so a branch's terminals do not all retry at the same instant after an outage.
    public func delay<G: RandomNumberGenerator>(afterFailures failures: Int, using generator: inout G) -> Duration {
        guard failures > 0 else { return interval }
        let exponent = min(failures - 1, 20)
        let nominal = min(initialBackoff * (1 << exponent), maxBackoff)
        return nominal * Double.random(in: 0.5...1.0, using: &generator)
    }
}

/// Runs a terminal's sync under ServiceLifecycle (and systemd): a cycle on start, then on an
/// interval and whenever SIGUSR1 arrives; backs off with jitter while offline; reports readiness,
/// status and watchdog pings to systemd; stops between cycles on graceful shutdown.
public struct SyncDaemon: Service {
    let engine: SyncEngine
    let configuration: SyncDaemonConfiguration
    let notifier: SystemdNotifier
    let logger: Logger

    public init(engine: SyncEngine, configuration: SyncDaemonConfiguration = .init(), notifier: SystemdNotifier = .init(), logger: Logger) {
        self.engine = engine
        self.configuration = configuration
        self.notifier = notifier
        self.logger = logger
    }

    enum Wake: Sendable { case timer, signal }

    public func run() async throws {
        let (wakes, wake) = AsyncStream.makeStream(of: Wake.self, bufferingPolicy: .bufferingNewest(1))
        let schedule = Schedule(configuration.interval)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    // The timer re-reads the schedule after each sleep, so backoff takes effect at once.
                    while !Task.isCancelled {
                        guard (try? await Task.sleep(for: schedule.next)) != nil else { return }
                        wake.yield(.timer)
                    }
                }
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sigusr1) { wake.yield(.signal) }
                }
                if let interval = notifier.watchdogInterval {
                    group.addTask {
                        while !Task.isCancelled {
                            notifier.watchdog()
                            guard (try? await Task.sleep(for: interval)) != nil else { return }
                        }
                    }
                }
                notifier.ready(status: "starting first sync")
                var generator = SystemRandomNumberGenerator()
                var failures = 0
                wake.yield(.timer)
                for await reason in wakes {
                    if Task.isShuttingDownGracefully { break }
                    failures = await cycle(reason: reason, failures: failures)
                    schedule.next = configuration.delay(afterFailures: failures, using: &generator)
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            notifier.stopping()
            wake.finish()
        }
    }

    /// One sync; returns the new count of consecutive failures.
    func cycle(reason: Wake, failures: Int) async -> Int {
        do {
            let summary = try await engine.sync()
            let status = "synced: \(summary.pushed) sent, \(summary.pulled) received, \(summary.openConflicts) open conflicts"
            notifier.status(status)
            logger.info("sync", metadata: [
                "trigger": "\(reason)", "pushed": "\(summary.pushed)", "rejected": "\(summary.rejected)", "pulled": "\(summary.pulled)",
                "bytes": "\(summary.bytesSent + summary.bytesReceived)", "open_conflicts": "\(summary.openConflicts)",
            ])
            return 0
        } catch let error as SyncError {
            let level: Logger.Level = error.code == .offline ? .notice : .error
            logger.log(level: level, "sync failed", metadata: ["code": "\(error.code.rawValue)", "detail": "\(error.detail)", "failures": "\(failures + 1)"])
            notifier.status("sync failed (\(error.code.rawValue)); retrying with backoff")
            return failures + 1
        } catch {
            logger.error("sync failed", metadata: ["error_type": "\(type(of: error))", "failures": "\(failures + 1)"])
            notifier.status("sync failed; retrying with backoff")
            return failures + 1
        }
    }
}

/// The delay until the next timer wake, shared between the loop and the timer task.
private final class Schedule: @unchecked Sendable {
    private let lock = NSLock()
    private var delay: Duration
    init(_ delay: Duration) { self.delay = delay }
    var next: Duration {
        get { lock.withLock { delay } }
        set { lock.withLock { delay = newValue } }
    }
}
