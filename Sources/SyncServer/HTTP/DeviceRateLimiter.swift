import Foundation
import Synchronization

/// A device's request budget: a token bucket refilled at `requestsPerSecond`, holding at most `burst`.
public struct DeviceRateLimit: Hashable, Sendable {
    public var requestsPerSecond: Double
    public var burst: Double

    public init(requestsPerSecond: Double, burst: Double) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
    }

    /// Far above what a terminal does (a sync every 30 s; a bootstrap at a few pages a second), so only
    /// a runaway or hostile device meets it, and one device cannot starve the others.
    public static let standard = DeviceRateLimit(requestsPerSecond: 20, burst: 40)
}

/// One token bucket per device id, in memory: a restart forgets them, which only ever lets a device
/// through. Buckets are keyed by device id, never by token or anything a patient could be named by.
final class DeviceRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    let limit: DeviceRateLimit
    /// Monotonic seconds; injected by tests.
    private let now: @Sendable () -> Double
    private let buckets = Mutex<[String: Bucket]>([:])
    /// Past this many buckets, full ones are dropped: a full bucket is the same as none.
    private static let pruneAbove = 4_096

    init(limit: DeviceRateLimit, now: @escaping @Sendable () -> Double = DeviceRateLimiter.monotonicSeconds) {
        self.limit = limit
        self.now = now
    }

    static func monotonicSeconds() -> Double {
        let (seconds, attoseconds) = (ContinuousClock.now - Self.origin).components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    private static let origin = ContinuousClock.now

    /// Takes one token for `device`. Nil when the request may go on; otherwise the seconds until a token is back.
    func admit(_ device: String) -> Double? {
        let now = now()
        let limit = limit
        return buckets.withLock { buckets in
            var bucket = buckets[device] ?? Bucket(tokens: limit.burst, updated: now)
            bucket.tokens = min(limit.burst, bucket.tokens + max(0, now - bucket.updated) * limit.requestsPerSecond)
            bucket.updated = now
            defer {
                buckets[device] = bucket
                if buckets.count > Self.pruneAbove {
                    let refill = limit.burst / limit.requestsPerSecond
                    buckets = buckets.filter { now - $0.value.updated < refill || $0.key == device }
                }
            }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / limit.requestsPerSecond }
            bucket.tokens -= 1
            return nil
        }
    }
}

extension Problem {
    /// `429 rate_limited` with `Retry-After` in whole seconds (at least 1), as RFC 9110 wants it.
    static func rateLimited(retryAfter seconds: Double) -> Problem {
        let whole = max(1, Int(seconds.rounded(.up)))
        var problem = Problem(.tooManyRequests, "rate_limited", "this device sent more requests than its budget allows; retry after \(whole) s")
        problem.headers[.retryAfter] = String(whole)
        return problem
    }
}
