/// A hybrid logical clock reading: 48 bits of Unix milliseconds, then a 16-bit counter.
///
/// Packed into one `UInt64` so that integer order is clock order and SQLite can index it.
public struct HLC: RawRepresentable, Hashable, Comparable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The largest millisecond value the 48-bit field holds (year 10889).
    public static let maxMilliseconds: UInt64 = (1 << 48) - 1
    public static let zero = HLC(rawValue: 0)

    public init(milliseconds: UInt64, counter: UInt16) {
        precondition(milliseconds <= HLC.maxMilliseconds, "HLC milliseconds overflow 48 bits")
        rawValue = milliseconds << 16 | UInt64(counter)
    }

    public var milliseconds: UInt64 { rawValue >> 16 }
    public var counter: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    public static func < (lhs: HLC, rhs: HLC) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension HLC: CustomStringConvertible {
    public var description: String { "\(milliseconds).\(counter)" }
}

extension HLC {
    /// The bit pattern as a signed integer, which is how SQLite stores it (order is kept: the top bit is never set).
    public var databaseValue: Int64 { Int64(bitPattern: rawValue) }
    public init(databaseValue: Int64) { rawValue = UInt64(bitPattern: databaseValue) }
}

/// Reads the wall clock. Injected so simulations and tests control time.
public protocol WallClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func milliseconds() -> UInt64
}

/// The system's real-time clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func milliseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A version arrived from further in the future than the bound allows.
public struct ClockDriftError: Error, Hashable, Sendable, CustomStringConvertible {
    /// How far ahead of the local wall clock the remote reading was, in milliseconds.
    public var driftMilliseconds: UInt64
    /// The bound it broke, in milliseconds.
    public var limitMilliseconds: UInt64

    public var description: String {
        "clock drift: a version is \(Self.format(driftMilliseconds)) ahead of this clock (limit \(Self.format(limitMilliseconds)))"
    }

    static func format(_ milliseconds: UInt64) -> String {
        let seconds = milliseconds / 1000
        if seconds >= 86_400 { return "\(seconds / 86_400)d \(seconds % 86_400 / 3600)h" }
        if seconds >= 3600 { return "\(seconds / 3600)h \(seconds % 3600 / 60)m" }
        if seconds >= 60 { return "\(seconds / 60)m \(seconds % 60)s" }
        return "\(seconds).\(String(format3: milliseconds % 1000))s"
    }
}

extension String {
    fileprivate init(format3 value: UInt64) {
        let digits = String(value)
        self = String(repeating: "0", count: 3 - digits.count) + digits
    }
}

/// The hybrid logical clock state machine. A value type: callers persist `last` (the high-water
/// mark) in the same transaction as the versions it issued, so it never moves backwards across restarts.
public struct HybridLogicalClock: Sendable {
    /// The highest reading issued or received.
    public private(set) var last: HLC

    public init(last: HLC = .zero) {
        self.last = last
    }

    /// A reading for a local event: greater than every reading issued or received so far,
    /// even when the wall clock has gone backwards or stands still.
    public mutating func tick(wall: UInt64) -> HLC {
        let wall = min(wall, HLC.maxMilliseconds)
        let next: HLC
        if wall > last.milliseconds {
            next = HLC(milliseconds: wall, counter: 0)
        } else if last.counter < UInt16.max {
            next = HLC(milliseconds: last.milliseconds, counter: last.counter + 1)
        } else if last.milliseconds == HLC.maxMilliseconds {
            // The year 10889: nothing is left to borrow. Only a poisoned clock gets here; never crash.
            return last
        } else {
            // Counter exhausted within one millisecond: borrow the next millisecond rather than wrap.
            next = HLC(milliseconds: last.milliseconds + 1, counter: 0)
        }
        last = next
        return next
    }

    /// Takes in a reading from another replica so that every later `tick` is greater than it.
    ///
    /// - Throws: ``ClockDriftError`` when `remote` is more than `maxDrift` milliseconds ahead of `wall`;
    ///   the clock is left unchanged then.
    public mutating func receive(_ remote: HLC, wall: UInt64, maxDrift: UInt64? = nil) throws(ClockDriftError) {
        if let maxDrift {
            try Self.check(remote, wall: wall, maxDrift: maxDrift)
        }
        if remote > last { last = remote }
    }

    /// Throws when `remote` is more than `maxDrift` milliseconds ahead of `wall`.
    public static func check(_ remote: HLC, wall: UInt64, maxDrift: UInt64) throws(ClockDriftError) {
        let ahead = remote.milliseconds > wall ? remote.milliseconds - wall : 0
        if ahead > maxDrift {
            throw ClockDriftError(driftMilliseconds: ahead, limitMilliseconds: maxDrift)
        }
    }
}
