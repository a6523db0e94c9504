import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SyncClient
import SyncServer

/// `clinic-sync serve`: the head-office sync server.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sync server on the embedded SQLite store.",
        discussion: """
            The store lives in DIR/server.sqlite, created (owner-only, 0700/0600) and migrated on first start; \
            a warning is logged at start for any store file or folder other users can read. Stops gracefully on \
            SIGTERM or SIGINT. Check it with `curl http://HOST:PORT/healthz` and `curl http://HOST:PORT/metrics`.
            """)

    @OptionGroup var data: DataOption
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "TCP port (0 picks a free one).") var port = 8080
    @Option(help: ArgumentHelp("Largest compressed request body, in bytes.", valueName: "bytes")) var maxBody = SyncLimits().inflate.maxCompressedBytes
    @Option(help: ArgumentHelp("Largest inflated request body, in bytes.", valueName: "bytes")) var maxInflated = SyncLimits().inflate.maxInflatedBytes
    @Option(help: ArgumentHelp("Largest inflated-to-compressed ratio of a request body (N for N:1).", valueName: "n")) var maxRatio = SyncLimits().inflate.maxRatio
    @Option(help: "Most changes in one push.") var maxChanges = SyncLimits().maxChangesPerPush
    @Option(help: "Most cells in one pull page, whatever a client asks for.") var maxPage = SyncLimits().maxPageSize
    @Option(help: ArgumentHelp("How far ahead of the server a client clock may be, in seconds.", valueName: "seconds"))
    var maxClockDrift = Int(SyncLimits().maxClockDriftMilliseconds / 1000)
    @Option(help: ArgumentHelp("Seconds without a sync after which /metrics counts a device as stale.", valueName: "seconds")) var staleAfter = 3_600.0
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard !host.isEmpty else { throw ValidationError("--host must not be empty (127.0.0.1 for this machine only, 0.0.0.0 for every interface)") }
        try Check.port(port)
        try Check.range(maxBody, 1_024...(1 << 30), "--max-body", unit: "bytes")
        try Check.range(maxInflated, maxBody...(4 << 30), "--max-inflated", unit: "bytes (at least --max-body)")
        try Check.range(maxRatio, 2...1_000_000, "--max-ratio")
        try Check.range(maxChanges, 1...1_000_000, "--max-changes")
        try Check.range(maxPage, 1...1_000_000, "--max-page")
        try Check.range(maxClockDrift, 1...Int(Check.year), "--max-clock-drift", unit: "seconds")
        try Check.seconds(staleAfter, 1...Check.year, "--stale-after")
    }

    func run() async throws {
        let logger = try log.logger("clinic-sync.server")
        var limits = SyncLimits()
        limits.inflate.maxCompressedBytes = maxBody
        limits.inflate.maxInflatedBytes = maxInflated
        limits.inflate.maxRatio = maxRatio
        limits.maxChangesPerPush = maxChanges
        limits.maxPageSize = maxPage
        limits.maxClockDriftMilliseconds = UInt64(maxClockDrift) * 1000
        let store = try data.store(creating: true)
        // Held until the process ends: `admin restore` refuses to swap the store under it, a second server to share it.
        let lock = try cliErrors { try ServerLock.acquire(directory: data.data) }
        try await store.pruneAudit()
        // Stores made before files were created owner-only, or copied with another umask, keep their modes.
        for (path, mode) in SQLiteServerStore.looseFiles(in: data.data) {
            logger.warning("patient data readable by other local users", metadata: [
                "path": .string(path), "mode": .string(String(mode, radix: 8)), "fix": .string("chmod go-rwx \(path)"),
            ])
        }
        let host = self.host
        let dataFolder = data.data
        var configuration = ServerConfiguration(host: host, port: port, limits: limits)
        configuration.staleAfter = staleAfter
        let notifier = SystemdNotifier()
        let app = buildApplication(configuration, store: store, logger: logger) { port in
            logger.notice("listening", metadata: ["url": "http://\(host):\(port)", "data": .string(dataFolder)])
            // systemd (Type=notify) starts dependants only now: the store is open and the port bound.
            notifier.ready(status: "listening on \(host):\(port)")
        }
        let watchdog = ServerWatchdog(notifier: notifier, logger: logger) { await store.health() }
        let services = ServiceGroup(configuration: .init(services: [app, watchdog], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await services.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CLIError("cannot listen on \(host):\(port): the address is already in use (another server running?); stop it or choose another --port")
        }
        withExtendedLifetime(lock) {}
        logger.notice("stopped")
    }
}

/// Pings systemd's watchdog while the store answers: each ping follows a health check that read the
/// store, so a server wedged on its database stops pinging and systemd restarts it after `WatchdogSec`.
/// An unhealthy answer (a full disk) still pings, since a restart would not cure it; the status says why.
struct ServerWatchdog: Service {
    let notifier: SystemdNotifier
    let logger: Logger
    let health: @Sendable () async -> StoreHealth

    func run() async throws {
        guard let interval = notifier.watchdogInterval else {
            try? await gracefulShutdown()
            notifier.stopping()
            return
        }
        var reported: String?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let current = await health()
            notifier.watchdog()
            if current.problem != reported {
                notifier.status(current.problem.map { "store problem: \($0) (see /healthz)" } ?? "serving")
                reported = current.problem
            }
            guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: interval) })) != nil else { break }
        }
        notifier.stopping()
    }
}
