import SyncCore

/// The server's limits. Every one is configurable; the defaults are documented in protocol/SPEC.md.
public struct SyncLimits: Sendable {
    /// Bounds on request bodies, enforced while inflating.
    public var inflate = InflateLimits(maxCompressedBytes: 2 << 20, maxInflatedBytes: 16 << 20, maxRatio: 100)
    /// Most changes in one push.
    public var maxChangesPerPush = 5_000
    /// Cells in a pull page when the client names no limit.
    public var defaultPageSize = 2_000
    /// Most cells in one pull page, whatever the client asks for.
    public var maxPageSize = 10_000
    /// A pull page ends early once its values add up to this many bytes.
    public var pageByteBudget = 4 << 20
    /// How far ahead of the server's clock a version may be, in milliseconds.
    public var maxClockDriftMilliseconds: UInt64 = 5 * 60 * 1000
    /// How long an enrollment code stays valid, in seconds.
    public var enrollmentCodeLifetime: Double = 24 * 3600

    public init() {}
}
