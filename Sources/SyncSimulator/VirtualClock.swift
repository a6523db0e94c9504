import Foundation
import SyncCore

/// Virtual time: the true time of a simulation, which every device clock derives from. Only the step
/// loop moves it, so a run takes milliseconds of real time however many days it simulates.
public final class SimulatedTime: @unchecked Sendable {
    /// 2025-11-29T01:33:20Z, the clock of the protocol's worked examples.
    public static let start: UInt64 = 1_764_380_000_000

    private let lock = NSLock()
    private var now: UInt64

    public init(start: UInt64 = SimulatedTime.start) {
        now = start
    }

    /// True time, in Unix milliseconds.
    public var milliseconds: UInt64 { lock.withLock { now } }

    /// Moves true time forward.
    public func advance(by milliseconds: UInt64) {
        lock.withLock { now += milliseconds }
    }
}

/// A device's wall clock: virtual time plus the device's skew, which the simulator sets and fixes.
public final class SkewedClock: WallClock, @unchecked Sendable {
    /// The true time this clock is skewed from.
    public let time: SimulatedTime
    private let lock = NSLock()
    private var offset: Int64 = 0

    public init(time: SimulatedTime, skew: Int64 = 0) {
        self.time = time
        offset = skew
    }

    /// Milliseconds this clock runs ahead of true time (negative: behind).
    public var skew: Int64 {
        get { lock.withLock { offset } }
        set { lock.withLock { offset = newValue } }
    }

    /// True time plus the skew (never before the epoch).
    public func milliseconds() -> UInt64 {
        let skewed = Int64(time.milliseconds) + skew
        return UInt64(max(0, skewed))
    }
}

/// Durations as scenario files write them: `250ms`, `90s`, `5m`, `2h`, `7d`, `1y`, with an optional sign.
public enum SimulatedDuration {
    /// Parses a duration (`0`, `-5m`, `+1y`), or nil.
    public static func milliseconds(_ text: String) -> Int64? {
        var body = Substring(text.trimmingCharacters(in: .whitespaces))
        if body == "0" { return 0 }
        var sign: Int64 = 1
        if body.hasPrefix("-") { sign = -1; body = body.dropFirst() } else if body.hasPrefix("+") { body = body.dropFirst() }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("y", 365 * 86_400_000)]
        for (suffix, scale) in units where body.hasSuffix(suffix) {
            guard let number = Int64(body.dropLast(suffix.count)) else { continue }
            return sign * number * scale
        }
        return nil
    }

    /// The shortest readable form: `+1y`, `-5m`, `+90s`, `0`.
    public static func format(_ milliseconds: Int64) -> String {
        if milliseconds == 0 { return "0" }
        let sign = milliseconds < 0 ? "-" : "+"
        let magnitude = milliseconds.magnitude
        let units: [(String, UInt64)] = [("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        for (suffix, scale) in units where magnitude % scale == 0 {
            return "\(sign)\(magnitude / scale)\(suffix)"
        }
        return "\(sign)\(magnitude)ms"
    }

    /// Elapsed virtual time as `d+hh:mm:ss.mmm`.
    public static func elapsed(_ milliseconds: UInt64) -> String {
        let days = milliseconds / 86_400_000
        let hours = milliseconds / 3_600_000 % 24, minutes = milliseconds / 60_000 % 60
        let seconds = milliseconds / 1000 % 60, millis = milliseconds % 1000
        func two(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let three = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(days)d+\(two(hours)):\(two(minutes)):\(two(seconds)).\(three)"
    }
}
