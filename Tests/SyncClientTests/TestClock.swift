import Foundation

/// Virtual time for the daemon's waits: a sleep ends only when the test moves time past its
/// deadline, so an hour-long outage takes milliseconds and nothing depends on real timing.
final class TestClock: @unchecked Sendable {
    private struct Sleeper {
        var id: UInt64
        var deadline: Duration
        var continuation: CheckedContinuation<Void, any Error>
    }

    private let lock = NSLock()
    private var time: Duration = .zero
    private var sleepers: [Sleeper] = []
    private var started = 0
    private var nextID: UInt64 = 0
    private var startWaiter: (after: Int, continuation: CheckedContinuation<Int, Never>)?

    /// Virtual time since the start.
    var now: Duration { lock.withLock { time } }

    /// The earliest deadline of a pending sleep.
    var nextDeadline: Duration? { lock.withLock { sleepers.map(\.deadline).min() } }

    func sleep(_ duration: Duration) async throws {
        let id = lock.withLock { nextID += 1; return nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (cancelled, waiter): (Bool, (after: Int, continuation: CheckedContinuation<Int, Never>)?) = lock.withLock {
                    if Task.isCancelled { return (true, nil) }
                    sleepers.append(Sleeper(id: id, deadline: time + duration, continuation: continuation))
                    started += 1
                    guard let waiter = startWaiter, started > waiter.after else { return (false, nil) }
                    startWaiter = nil
                    return (false, waiter)
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
                waiter?.continuation.resume(returning: lock.withLock { started })
            }
        } onCancel: {
            let sleeper: Sleeper? = lock.withLock {
                guard let index = sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Waits until more than `count` sleeps have begun; returns how many have.
    func waitForSleeps(after count: Int) async -> Int {
        await withCheckedContinuation { continuation in
            let ready: Int? = lock.withLock {
                if started > count { return started }
                startWaiter = (count, continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Moves time forward to `instant`, ending the sleeps due by then.
    func advance(to instant: Duration) {
        let due: [Sleeper] = lock.withLock {
            time = max(time, instant)
            let due = sleepers.filter { $0.deadline <= time }
            sleepers.removeAll { $0.deadline <= time }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Moves time to the earliest pending deadline and ends the sleeps due by then.
    func advanceToNextDeadline() {
        if let deadline = nextDeadline { advance(to: deadline) }
    }
}
