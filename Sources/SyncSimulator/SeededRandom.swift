import Foundation
import SyncCore
import SyncServer

/// A seeded source of every choice a simulation makes: SyncCore's ``SplitMix64`` behind a lock, so the
/// step loop, the network and the id generator can share it. Same seed, same choices, on every platform.
public final class SeededRandom: @unchecked Sendable {
    private let lock = NSLock()
    private var generator: SplitMix64

    public init(seed: UInt64) {
        generator = SplitMix64(seed: seed)
    }

    /// The next 64 random bits.
    public func next() -> UInt64 {
        lock.withLock { generator.next() }
    }

    /// A number in `0..<bound` (bound > 0). Plain modulo: stable across Swift versions, bias irrelevant here.
    public func int(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next() % UInt64(bound))
    }

    /// True with probability `percent`/100.
    public func chance(_ percent: Int) -> Bool {
        percent > 0 && int(below: 100) < percent
    }

    /// One of `items`, or nil when there are none.
    public func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[int(below: items.count)]
    }

    /// A `RandomSource` for the server (replica ids, device ids, tokens) drawing from this generator.
    public var source: RandomSource {
        RandomSource { [self] in self.next() }
    }

    /// A lowercase version-4 UUID drawn from this generator.
    public func uuidString() -> String {
        var source = self.source
        return source.uuidString()
    }
}
