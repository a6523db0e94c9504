import Foundation
import GRDB
import Hummingbird
import HummingbirdCore
import Logging
import SyncCore

/// Builds the sync server. Production (`clinic-sync serve`), the demo and the tests all use this.
public func buildApplication<Store: ServerStore>(
    _ configuration: ServerConfiguration, store: Store, metrics: ServerMetrics = ServerMetrics(), logger: Logger? = nil,
    onServerRunning: (@Sendable (Int) async -> Void)? = nil
) -> some ApplicationProtocol {
    let logger = logger ?? Logger(label: configuration.serverName)
    return Application(
        router: buildRouter(configuration, store: store, metrics: metrics),
        server: configuration.tls.map { HTTPServerBuilder.reloadableTLS($0) } ?? .http1(),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: configuration.serverName),
        onServerRunning: { channel in
            await onServerRunning?(channel.localAddress?.port ?? configuration.port)
        },
        logger: logger)
}

/// The server's routes and middleware. Apart from ``buildApplication`` so that tests can read the
/// router's own route list (`Router.routes`) and check protocol/openapi.yaml against it.
func buildRouter<Store: ServerStore>(_ configuration: ServerConfiguration, store: Store, metrics: ServerMetrics) -> Router<SyncRequestContext> {
    // HEAD for every GET: `Allow` names it, and monitors probe /healthz with HEAD.
    let router = Router(context: SyncRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
    router.add(middleware: ErrorShieldMiddleware())
    router.add(middleware: MethodNotAllowedMiddleware(routes: [
        "/healthz": [.get, .head], "/metrics": [.get, .head], "/v1/sync": [.post], "/v1/enroll": [.post],
    ]))
    router.get("/healthz") { _, _ -> Response in
        // Which build and which store answered: a restored or misrouted server shows here first.
        let state = await store.health()
        let health = Health(status: state.isHealthy ? "ok" : "unhealthy", version: BuildInfo.version,
                            server: try? await store.serverID(), problem: state.problem, detail: state.detail)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Response(
            status: health.status == "ok" ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(health))))
    }
    router.get("/metrics") { request, context -> Response in
        guard configuration.metricsAccess.allows(peer: context.peer, authorization: request.headers[.authorization]) else {
            throw Problem(.forbidden, "metrics_forbidden", configuration.metricsAccess == .loopbackOnly
                ? "/metrics answers this machine only; start the server with --metrics-token-file to let a scraper elsewhere read it with that token"
                : "/metrics needs `Authorization: Bearer <metrics token>`")
        }
        // A store that cannot be read leaves the last values; /healthz reports it.
        if let statistics = try? await store.statistics(staleAfter: configuration.staleAfter) { metrics.update(from: statistics) }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
    }
    SyncController(store: store, limits: configuration.limits, metrics: metrics,
                   rateLimiter: configuration.deviceRateLimit.map { DeviceRateLimiter(limit: $0) }).addRoutes(to: router)
    return router
}

/// Turns any error that is not already an HTTP problem into a 500 that says nothing about its cause
/// (SQLite messages can quote values), and logs its type for the operator.
struct ErrorShieldMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPResponseError {
            throw error
        } catch {
            context.logger.error("internal error", metadata: Problem.metadata(of: error))
            throw Problem(.internalServerError, "internal_error", "the server could not complete the request; it has been logged")
        }
    }
}

/// The body of `GET /healthz`.
struct Health: Codable {
    var status: String
    var version: String
    /// The store's own id (the server replica id), stable across restarts.
    var server: String?
    /// When unhealthy: a stable code (`storage_full`, `store_unavailable`) and what to do.
    var problem: String?
    var detail: String?
}

extension Problem {
    /// What an internal error's log line says: the error's type and, for SQLite, its result codes —
    /// never SQLite's message, which can quote values.
    static func metadata(of error: any Error) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["error_type": .string(String(describing: type(of: error)))]
        if let error = error as? DatabaseError {
            metadata["sqlite_code"] = .string("\(error.resultCode)")
            metadata["sqlite_extended_code"] = .string("\(error.extendedResultCode)")
        }
        return metadata
    }
}
