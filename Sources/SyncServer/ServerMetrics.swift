import Hummingbird
import Prometheus

/// The server's Prometheus metrics, on a registry of its own so that each app (and each test) counts alone.
/// Labels carry routes, statuses and outcomes: never device ids, branches' patients or values.
public struct ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let accepted: Counter
    let rejected: Counter
    let conflicts: Counter
    let bytesInCompressed: Counter
    let bytesInInflated: Counter
    let bytesOutCompressed: Counter
    let bytesOutInflated: Counter
    let syncLatency: DurationHistogram

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        accepted = registry.makeCounter(descriptor: Self.name("changes_accepted", "total", "Pushed changes stored."))
        rejected = registry.makeCounter(descriptor: Self.name("changes_rejected", "total", "Pushed changes refused (scope, role, validation)."))
        conflicts = registry.makeCounter(descriptor: Self.name("conflicts", "total", "Concurrent writes recorded as conflicts."))
        let bytes = Self.name("body_bytes", "total", "Bytes of /v1/sync and /v1/enroll bodies, as sent (deflate) and as decoded (identity).")
        bytesInCompressed = registry.makeCounter(descriptor: bytes, labels: [("direction", "in"), ("encoding", "deflate")])
        bytesInInflated = registry.makeCounter(descriptor: bytes, labels: [("direction", "in"), ("encoding", "identity")])
        bytesOutCompressed = registry.makeCounter(descriptor: bytes, labels: [("direction", "out"), ("encoding", "deflate")])
        bytesOutInflated = registry.makeCounter(descriptor: bytes, labels: [("direction", "out"), ("encoding", "identity")])
        syncLatency = registry.makeDurationHistogram(
            descriptor: Self.name("sync_duration", "seconds", "Time to handle POST /v1/sync, from authenticated request to encoded response."),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5)])
    }

    static var requests: MetricNameDescriptor { name("http_requests", "total", "HTTP requests by route and status.") }

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "clinicsync", metricName: metric, unitName: unit, helpText: help)
    }

    func recordRequest(route: String, status: Int) {
        registry.makeCounter(descriptor: Self.requests, labels: [("route", route), ("status", String(status))]).increment()
    }
}

/// Counts every request by route and status, problems included.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: response.status.code)
            return response
        } catch let error as HTTPResponseError {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: error.status.code)
            throw error
        } catch {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: 500)
            throw error
        }
    }
}
