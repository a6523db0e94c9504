import Foundation
import Testing
@testable import SyncCore

@Suite("Hybrid logical clock")
struct HLCTests {
    @Test func packsMillisecondsAndCounter() {
        let hlc = HLC(milliseconds: 1_764_380_000_123, counter: 7)
        #expect(hlc.milliseconds == 1_764_380_000_123)
        #expect(hlc.counter == 7)
        #expect(HLC(milliseconds: 2, counter: 0) > HLC(milliseconds: 1, counter: .max))
    }

    @Test func neverGoesBackwardsWhenTheWallClockDoes() {
        var clock = HybridLogicalClock()
        let first = clock.tick(wall: 10_000)
        let second = clock.tick(wall: 5_000)
        let third = clock.tick(wall: 5_000)
        #expect(first < second && second < third)
        #expect(second.milliseconds == 10_000 && second.counter == 1)
    }

    @Test func equalTimestampsAdvanceTheCounter() {
        var clock = HybridLogicalClock()
        let readings = (0..<100).map { _ in clock.tick(wall: 42) }
        #expect(readings == readings.sorted())
        #expect(Set(readings).count == 100)
        #expect(readings.last == HLC(milliseconds: 42, counter: 99))
    }

    @Test func counterOverflowBorrowsTheNextMillisecond() {
        var clock = HybridLogicalClock(last: HLC(milliseconds: 42, counter: .max))
        let next = clock.tick(wall: 42)
        #expect(next == HLC(milliseconds: 43, counter: 0))
        #expect(clock.tick(wall: 42) == HLC(milliseconds: 43, counter: 1))
    }

    @Test func advancesPastEveryReceivedReading() throws {
        var clock = HybridLogicalClock()
        let remote = HLC(milliseconds: 90_000, counter: 5)
        try clock.receive(remote, wall: 1_000)
        #expect(clock.tick(wall: 1_000) > remote)
    }

    @Test func refusesReadingsBeyondTheDriftBoundAndNamesTheDrift() {
        var clock = HybridLogicalClock(last: HLC(milliseconds: 1_000, counter: 0))
        let fiveMinutes: UInt64 = 300_000
        let wall: UInt64 = 1_000_000
        #expect(throws: Never.self) { try clock.receive(HLC(milliseconds: wall + fiveMinutes, counter: 0), wall: wall, maxDrift: fiveMinutes) }
        let error = #expect(throws: ClockDriftError.self) {
            try clock.receive(HLC(milliseconds: wall + 3_600_000, counter: 0), wall: wall, maxDrift: fiveMinutes)
        }
        #expect(error?.driftMilliseconds == 3_600_000)
        #expect(error?.description.contains("1h 0m ahead") == true)
        #expect(clock.last == HLC(milliseconds: wall + fiveMinutes, counter: 0), "a refused reading must not move the clock")
    }

    @Test func saturatesAtTheLargest48BitMillisecond() {
        var clock = HybridLogicalClock()
        let reading = clock.tick(wall: .max)
        #expect(reading.milliseconds == HLC.maxMilliseconds)
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test func matchesISO8601DateFormatter() {
        for milliseconds: UInt64 in [0, 951_782_400_999, 1_764_380_000_123, 4_102_444_799_000] {
            let expected = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds / 1000)))
            #expect(Timestamp.iso8601(milliseconds: milliseconds) == expected)
        }
    }
}
