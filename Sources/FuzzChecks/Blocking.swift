import Foundation
import SyncCore

/// Runs async library code from libFuzzer's synchronous callback. The callback runs on libFuzzer's
/// own thread, never on a cooperative one, so waiting on a semaphore here cannot starve the pool.
package func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Outcome<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            outcome.set(.success(try await body()))
        } catch {
            outcome.set(.failure(error))
        }
        done.signal()
    }
    done.wait()
    return try outcome.result!.get()
}

private final class Outcome<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Result<T, any Error>?

    func set(_ result: Result<T, any Error>) { lock.withLock { stored = result } }
    var result: Result<T, any Error>? { lock.withLock { stored } }
}

/// A clock that never moves: runs replay exactly, and drift checks see the same "now" every time.
package struct FixedClock: WallClock {
    package let now: UInt64
    package init(_ now: UInt64) { self.now = now }
    package func milliseconds() -> UInt64 { now }
}
