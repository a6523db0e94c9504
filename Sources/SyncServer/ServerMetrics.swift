import Foundation
import Hummingbird
import Prometheus
import SyncCore

/// The server's Prometheus metrics, on a registry of its own so that each app (and each test) counts alone.
/// Labels carry routes, statuses and outcomes: never device ids, branches' patients or values.
public struct ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let accepted: Counter
    /// Pushed changes refused, by reason: what terminals keep as dead letters.
    let rejected: [RejectionReason: Counter]
    let conflicts: Counter
    let bytesInCompressed: Counter
    let bytesInInflated: Counter
    let bytesOutCompressed: Counter
    let bytesOutInflated: Counter
    let syncLatency: DurationHistogram
    let activeDevices: Gauge
    let staleDevices: Gauge
    let oldestSyncAge: Gauge
    let openConflicts: Gauge
    /// Requests being handled right now, on every route.
    let inFlight: Gauge
    /// How long a push waited for the store's single writer before its write transaction began.
    let writeWait: DurationHistogram

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        accepted = registry.makeCounter(descriptor: Self.name("changes_accepted", "total", "Pushed changes stored."))
        let refused = Self.name("changes_rejected", "total", "Pushed changes refused, by reason (scope, role, validation); terminals keep them as dead letters.")
        rejected = Dictionary(uniqueKeysWithValues: RejectionReason.allCases.map { reason in
            (reason, registry.makeCounter(descriptor: refused, labels: [("reason", reason.name)]))
        })
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
        registry.makeGauge(descriptor: Self.name("build", "info", "This build; the value is always 1."), labels: [("version", BuildInfo.version)]).set(to: 1)
        registry.makeGauge(descriptor: Self.name("process_start_time", "seconds", "When this server started, in Unix seconds."))
            .set(Date().timeIntervalSince1970)
        let devices = Self.name("devices", "", "Enrolled, unrevoked devices; stale ones have not synced within the stale threshold.")
        activeDevices = registry.makeGauge(descriptor: devices, labels: [("state", "active")])
        staleDevices = registry.makeGauge(descriptor: devices, labels: [("state", "stale")])
        oldestSyncAge = registry.makeGauge(descriptor: Self.name("device_oldest_sync_age", "seconds", "Time since the least recent sync of an active device."))
        openConflicts = registry.makeGauge(descriptor: Self.name("conflicts_open", "", "Conflicts not yet resolved."))
        inFlight = registry.makeGauge(descriptor: Self.name("http_requests_in_flight", "", "HTTP requests being handled now."))
        // Finer at the bottom than sync_duration: an idle store answers in microseconds, a queue shows as milliseconds.
        writeWait = registry.makeDurationHistogram(
            descriptor: Self.name("write_queue_wait", "seconds", "Time a push waits for the store's writer before its write transaction starts."),
            buckets: [.microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                      .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5)])
    }

    /// Sets the gauges the store counts; called on each scrape, so they are as fresh as the scrape.
    func update(from statistics: StoreStatistics) {
        activeDevices.set(Double(statistics.activeDevices))
        staleDevices.set(Double(statistics.staleDevices))
        oldestSyncAge.set(statistics.oldestSyncAge)
        openConflicts.set(Double(statistics.openConflicts))
        for reason in RejectionReason.allCases {
            registry.makeGauge(
                descriptor: Self.name("rejections_held", "", "Refused pushed changes the server still holds, by reason."), labels: [("reason", reason.name)]
            ).set(Double(statistics.rejectionsByReason[reason.name] ?? 0))
        }
    }

    static var requests: MetricNameDescriptor { name("http_requests", "total", "HTTP requests by route and status.") }

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "clinicsync", metricName: metric, unitName: unit, helpText: help)
    }

    func recordRequest(route: String, status: Int) {
        registry.makeCounter(descriptor: Self.requests, labels: [("route", route), ("status", String(status))]).increment()
    }

    static var problems: MetricNameDescriptor {
        name("problems", "total", "Requests refused as a whole, by problem code (storage_full, too_many_changes, revoked_token, …).")
    }

    /// Counts a refused request by its stable problem code (never its detail).
    func recordProblem(_ code: String) {
        registry.makeCounter(descriptor: Self.problems, labels: [("code", code)]).increment()
    }

    /// Counts the changes one push refused for the first time.
    func recordRejections(_ byReason: [RejectionReason: Int]) {
        for (reason, count) in byReason { rejected[reason]?.increment(by: Int64(count)) }
    }
}

/// Counts every request by route and status, problems included, and those in flight.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        metrics.inFlight.increment()
        // Until the handler returns: the body is written after, but the work that queues is done by then.
        defer { metrics.inFlight.decrement() }
        do {
            let response = try await next(request, context)
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: response.status.code)
            return response
        } catch let error as HTTPResponseError {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: error.status.code)
            if let problem = error as? Problem { metrics.recordProblem(problem.code) }
            throw error
        } catch {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: 500)
            throw error
        }
    }
}
