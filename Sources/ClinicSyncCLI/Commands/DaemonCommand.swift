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
            Syncs at start, then --interval seconds after each sync, and at once on SIGUSR1 \
            (`systemctl kill -s USR1 UNIT`). While the server is unreachable it retries with exponential \
            backoff (from 2 s, doubling, up to --max-backoff), each wait jittered with this terminal's own \
            randomness so a branch's terminals do not retry in lockstep. The first sync that succeeds puts \
            it straight back on --interval. Under systemd (Type=notify) it reports readiness and status, and \
            pings the watchdog when WatchdogSec is set. SIGTERM or SIGINT stops it between cycles. See \
            tools/systemd/ for a unit file.
            """)

    @OptionGroup var replica: ReplicaOption
    @Option(help: ArgumentHelp("Seconds between syncs.", valueName: "seconds")) var interval = 30.0
    @Option(help: ArgumentHelp(
        "Longest wait between retries while offline, in seconds (default: the interval, so the terminal is back in sync within one interval of the server's return).",
        valueName: "seconds"))
    var maxBackoff: Double?
    @OptionGroup var log: LogOptions

    func validate() throws {
        try Check.seconds(interval, 0.1...86_400, "--interval")
        if let maxBackoff { try Check.seconds(maxBackoff, 0.1...86_400, "--max-backoff") }
    }

    func run() async throws {
        let logger = try log.logger("clinic-sync.daemon")
        let replica = try replica.open()
        let engine = SyncEngine(replica: replica, transport: try transport(for: replica), logger: logger)
        let daemon = SyncDaemon(
            engine: engine,
            configuration: SyncDaemonConfiguration(interval: .milliseconds(Int64(interval * 1000)), maxBackoff: maxBackoff.map { .milliseconds(Int64($0 * 1000)) }),
            logger: logger)
        logger.notice("daemon started", metadata: ["replica": .string(self.replica.db), "interval_s": "\(interval)"])
        try await ServiceGroup(configuration: .init(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
        logger.notice("daemon stopped")
    }
}
