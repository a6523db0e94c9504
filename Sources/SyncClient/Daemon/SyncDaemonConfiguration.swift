import SyncCore

/// How the daemon paces itself.
public struct SyncDaemonConfiguration: Sendable {
    /// Time between syncs while the server answers.
    public var interval: Duration = .seconds(30)
    /// The first retry delay after a failure; doubles per failure up to ``maxBackoff``.
    public var initialBackoff: Duration = .seconds(2)
    /// The longest wait between retries while offline. Nil (the default): the interval, so that a
    /// terminal is back in sync within one interval of the server's return, however long it was away.
    public var maxBackoff: Duration?
    /// How long a sync may go without progress (an answer received, a page applied) before watchdog
    /// pings stop. Nil (the default): systemd's `WatchdogSec`.
    public var stallLimit: Duration?

    public init(interval: Duration = .seconds(30), initialBackoff: Duration = .seconds(2), maxBackoff: Duration? = nil, stallLimit: Duration? = nil) {
        self.interval = interval
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.stallLimit = stallLimit
    }

    /// The delay before the next attempt after `failures` consecutive failures: the interval after a
    /// success; otherwise the backoff, jittered into [50%, 100%] with the terminal's own generator so a
    /// branch's terminals do not retry in lockstep.
    public func delay<G: RandomNumberGenerator>(afterFailures failures: Int, using generator: inout G) -> Duration {
        guard failures > 0 else { return interval }
        let exponent = min(failures - 1, 20)
        let nominal = min(initialBackoff * (1 << exponent), maxBackoff ?? interval)
        return nominal * Double.random(in: 0.5...1.0, using: &generator)
    }
}
