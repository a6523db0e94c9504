import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import SyncCore
import Testing
@testable import SyncServer

/// Fairness (issue 12): each device has a request budget; one over it is refused alone.
@Suite("Device rate limit")
struct RateLimitTests {
    @Test func aDeviceOverItsBudgetGets429WithRetryAfterWhileOthersGo() async throws {
        var configured = try await TestServer()
        // Almost no refill: the test never depends on how fast it runs.
        configured.configuration.deviceRateLimit = DeviceRateLimit(requestsPerSecond: 0.01, burst: 3)
        let server = configured
        try await server.app.test(.router) { client in
            let busy = try await client.enrolledDevice(server, branch: "harley-street")
            let other = try await client.enrolledDevice(server, branch: "harley-street")
            for _ in 0..<3 { _ = try await client.syncOK(busy.request(), token: busy.token) }
            let refused = try await client.sync(busy.request(), token: busy.token)
            #expect(refused.status == .tooManyRequests)
            #expect((try? Wire.problem(refused).code) == "rate_limited")
            let retryAfter = try #require(refused.headers[.retryAfter].flatMap { Int($0) }, "Retry-After in whole seconds")
            #expect(retryAfter >= 1 && retryAfter <= 101, "one token at 0.01/s: \(retryAfter)")
            // Another device of the same branch is not held back by the first one's budget.
            _ = try await client.syncOK(other.request(), token: other.token)
            // Enrollment is not charged: a new terminal still enrolls.
            _ = try await client.enrolledDevice(server, branch: "harley-street")
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"clinicsync_problems_total{code="rate_limited"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"clinicsync_http_requests_total{route="/v1/sync",status="429"} 1"#), "\(metrics)")
        }
    }

    @Test func aBucketRefillsAtItsRate() {
        let now = Mutex(100.0)
        let limiter = DeviceRateLimiter(limit: DeviceRateLimit(requestsPerSecond: 2, burst: 4)) { now.withLock { $0 } }
        for _ in 0..<4 { #expect(limiter.admit("a") == nil) }
        #expect(limiter.admit("a") == 0.5, "one token at 2/s")
        #expect(limiter.admit("b") == nil, "buckets are per device")
        now.withLock { $0 += 0.5 }
        #expect(limiter.admit("a") == nil)
        #expect(limiter.admit("a") != nil)
        now.withLock { $0 += 60 }
        // Refilled to the burst, never beyond it.
        for _ in 0..<4 { #expect(limiter.admit("a") == nil) }
        #expect(limiter.admit("a") != nil)
    }

    @Test func metricsShowRequestsInFlightAndTheWriteQueueWait() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            let changes = device.write(.enquiry, "e-1", [(Columns.Enquiry.branch, "harley-street"), (Columns.Enquiry.name, "Test Patient")],
                                       wall: server.clock.milliseconds())
            _ = try await client.syncOK(device.request(changes), token: device.token)
            _ = try await client.syncOK(device.request(), token: device.token)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            // The scrape itself is in flight while it renders.
            #expect(metrics.contains("clinicsync_http_requests_in_flight 1"), "\(metrics)")
            // One push waited for the writer; the pull wrote nothing and is not counted.
            #expect(metrics.contains("clinicsync_write_queue_wait_seconds_count 1"), "\(metrics)")
            #expect(metrics.contains(#"clinicsync_http_requests_total{route="/v1/sync",status="200"} 2"#), "\(metrics)")
        }
    }
}
