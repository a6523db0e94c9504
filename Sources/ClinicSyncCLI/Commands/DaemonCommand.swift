import ArgumentParser
import Logging
import ServiceLifecycle
import SyncClient

/// `clinic-sync daemon`: keeps one terminal's replica in sync, under systemd or by hand.
struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Sync a terminal's replica on an interval, backing off while offline.",
        discussion: """
            Syncs at start, then every --interval seconds and at once on SIGUSR1 (`systemctl kill -s USR1 UNIT`). \
            While the server is unreachable it retries with exponential backoff and jitter, up to --max-backoff. \
            Under systemd (Type=notify) it reports readiness and status, and pings the watchdog when WatchdogSec is set. \
            SIGTERM or SIGINT stops it between cycles. See tools/systemd/ for a unit file.
            """)

    @OptionGroup var replica: ReplicaOption
    @Option(help: ArgumentHelp("Seconds between syncs.", valueName: "seconds")) var interval = 30.0
    @Option(help: ArgumentHelp("Longest wait between retries while offline, in seconds.", valueName: "seconds")) var maxBackoff = 300.0
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard interval > 0, maxBackoff > 0 else { throw ValidationError("--interval and --max-backoff must be positive") }
    }

    func run() async throws {
        let logger = try log.logger("clinic-sync.daemon")
        let replica = try replica.open()
        let engine = SyncEngine(replica: replica, transport: HTTPTransport(baseURL: try serverURL(replica)), logger: logger)
        let daemon = SyncDaemon(
            engine: engine,
            configuration: SyncDaemonConfiguration(interval: .milliseconds(Int64(interval * 1000)), maxBackoff: .milliseconds(Int64(maxBackoff * 1000))),
            logger: logger)
        logger.notice("daemon started", metadata: ["replica": .string(self.replica.db), "interval_s": "\(interval)"])
        try await ServiceGroup(configuration: .init(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
        logger.notice("daemon stopped")
    }
}
