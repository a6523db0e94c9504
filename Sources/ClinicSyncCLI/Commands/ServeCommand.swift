import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SyncClient
import SyncServer
import UnixSignals

/// `clinic-sync serve`: the head-office sync server.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sync server on the embedded SQLite store.",
        discussion: """
            The store lives in DIR/server.sqlite, created (owner-only, 0700/0600) and migrated on first start; \
            a warning is logged at start for any store file or folder other users can read. Stops gracefully on \
            SIGTERM or SIGINT. Check it with `curl http://HOST:PORT/healthz` and `curl http://HOST:PORT/metrics`.

            With --tls-cert and --tls-key it serves HTTPS; SIGHUP re-reads both files for new connections \
            (open ones keep theirs), and a pair that cannot be used leaves the previous one in place. The log \
            names the certificate's key hash for `terminal enroll --pin-sha256`. Without TLS it listens only \
            on a loopback address unless --insecure-http is given (e.g. behind a reverse proxy that does TLS).
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
    @Option(help: ArgumentHelp("Serve HTTPS with this PEM certificate chain (server certificate first).", valueName: "file")) var tlsCert: String?
    @Option(help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file")) var tlsKey: String?
    @Flag(help: "Serve plain HTTP on a non-loopback --host (enquiries would cross the network unencrypted).") var insecureHttp = false
    @Option(help: ArgumentHelp(
        "A file holding the token a Prometheus scraper sends (`Authorization: Bearer …`) to read /metrics from another machine.",
        discussion: "Without it /metrics answers this machine only.", valueName: "file"))
    var metricsTokenFile: String?
    @Option(help: ArgumentHelp(
        "Requests per second each device may make to /v1/sync on average; beyond its budget it gets 429 rate_limited with Retry-After.",
        discussion: "0 turns the budget off. Terminals sync every 30 s and bootstrap at a few requests a second.", valueName: "n"))
    var deviceRate = DeviceRateLimit.standard.requestsPerSecond
    @Option(help: ArgumentHelp("Requests a device may make at once above --device-rate before it is refused.", valueName: "n"))
    var deviceBurst = DeviceRateLimit.standard.burst
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard !host.isEmpty else { throw ValidationError("--host must not be empty (127.0.0.1 for this machine only, 0.0.0.0 for every interface)") }
        try Check.port(port)
        try Check.range(maxBody, 1_024...(1 << 30), "--max-body", unit: "bytes")
        // min(): a reversed range would trap, whatever order the checks above are in.
        try Check.range(maxInflated, min(maxBody, 4 << 30)...(4 << 30), "--max-inflated", unit: "bytes (at least --max-body)")
        try Check.range(maxRatio, 2...1_000_000, "--max-ratio")
        try Check.range(maxChanges, 1...1_000_000, "--max-changes")
        try Check.range(maxPage, 1...1_000_000, "--max-page")
        try Check.range(maxClockDrift, 1...Int(Check.year), "--max-clock-drift", unit: "seconds")
        try Check.seconds(staleAfter, 1...Check.year, "--stale-after")
        guard deviceRate.isFinite, (0...1_000_000).contains(deviceRate) else { throw ValidationError("--device-rate must be 0–1000000 (0: no limit), not \(deviceRate)") }
        guard deviceBurst.isFinite, (1...1_000_000).contains(deviceBurst) else { throw ValidationError("--device-burst must be 1–1000000, not \(deviceBurst)") }
        switch (tlsCert, tlsKey) {
        case (.some, nil): throw ValidationError("--tls-cert needs --tls-key: give the certificate's private key too")
        case (nil, .some): throw ValidationError("--tls-key needs --tls-cert: give the key's certificate too")
        case (.some, .some) where insecureHttp: throw ValidationError("--insecure-http contradicts --tls-cert/--tls-key: choose one")
        case (nil, nil) where !insecureHttp && !ServerTrust.isLoopback(host: host):
            throw ValidationError("""
                refusing plain HTTP on \(host): enquiries would cross the network unencrypted. Give --tls-cert and --tls-key, \
                or --insecure-http if a TLS-terminating proxy sits in front
                """)
        default: break
        }
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
        // Before the store: a certificate that cannot be used stops the command with nothing created.
        let tls: ServerTLS?
        do {
            tls = try tlsCert.flatMap { certificate in try tlsKey.map { try ServerTLS(certificatePath: certificate, keyPath: $0) } }
        } catch let error as ServerTLSError {
            throw CLIError(error.description)
        }
        let metricsAccess = try metricsTokenFile.map(Self.metricsAccess(from:)) ?? .loopbackOnly
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
        configuration.tls = tls
        configuration.metricsAccess = metricsAccess
        configuration.deviceRateLimit = deviceRate > 0 ? DeviceRateLimit(requestsPerSecond: deviceRate, burst: deviceBurst) : nil
        let insecureHttp = self.insecureHttp
        let notifier = SystemdNotifier()
        let app = buildApplication(configuration, store: store, logger: logger) { port in
            let url = "\(tls == nil ? "http" : "https")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            var metadata: Logger.Metadata = ["url": .string(url), "data": .string(dataFolder)]
            if let tls {
                metadata["tls"] = "on"
                metadata["tls_pin_sha256"] = .string(tls.pinSHA256)
            } else {
                metadata["tls"] = .string(insecureHttp ? "off: plain HTTP, reachable beyond this machine (--insecure-http)" : "off: plain HTTP, loopback only")
            }
            logger.notice("listening", metadata: metadata)
            // systemd (Type=notify) starts dependants only now: the store is open and the port bound.
            notifier.ready(status: "listening on \(url)")
        }
        let watchdog = ServerWatchdog(notifier: notifier, logger: logger) { await store.health() }
        let services = ServiceGroup(configuration: .init(services: [app, watchdog], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await withThrowingDiscardingTaskGroup { group in
                // Always trapped: `systemctl reload` (SIGHUP) must never kill a server that has nothing to reload.
                group.addTask { await Self.reloadOnHangUp(tls, logger: logger) }
                try await services.run()
                group.cancelAll()
            }
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CLIError("cannot listen on \(host):\(port): the address is already in use (another server running?); stop it or choose another --port")
        }
        withExtendedLifetime(lock) {}
        logger.notice("stopped")
    }

    /// Reads the metrics token: at least 16 characters, so a guess is not a way in.
    static func metricsAccess(from path: String) throws -> MetricsAccess {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read the metrics token file \(path); create it (e.g. `openssl rand -hex 32 > \(path)`, mode 0600)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16, !token.contains(where: \.isWhitespace) else {
            throw CLIError("the metrics token in \(path) must be one word of at least 16 characters (e.g. `openssl rand -hex 32`)")
        }
        return .token(token)
    }

    /// SIGHUP re-reads the certificate and key (after a renewal) until the task is cancelled.
    static func reloadOnHangUp(_ tls: ServerTLS?, logger: Logger) async {
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            guard let tls else {
                logger.notice("SIGHUP: nothing to reload (no TLS certificate)")
                continue
            }
            do {
                let pin = try tls.reload()
                logger.notice("TLS certificate reloaded; new connections use it", metadata: ["tls_pin_sha256": .string(pin)])
            } catch {
                logger.error("TLS certificate reload failed; still serving the previous certificate", metadata: ["error": "\(error)"])
            }
        }
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
