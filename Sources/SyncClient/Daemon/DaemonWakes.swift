import Foundation

/// Why the daemon's loop wakes up.
enum DaemonWake: Sendable {
    case start, timer, signal, stop
}

/// Requests to sync now (SIGUSR1, ``SyncDaemon/syncNow()``) and to stop, waiting for the loop.
///
/// Unlike an `AsyncStream`, a wait here can be cancelled (when the timer wins the race) without
/// ending the stream, and several requests that arrive during one cycle collapse into one.
final class DaemonWakes: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: DaemonWake?
    private var waiter: (id: UInt64, continuation: CheckedContinuation<DaemonWake?, Never>)?
    private var nextID: UInt64 = 0

    /// Posts a request; `stop` outranks `signal`.
    func post(_ wake: DaemonWake) {
        let waiting: CheckedContinuation<DaemonWake?, Never>? = lock.withLock {
            // A stop stays pending, so every later wait returns it at once.
            if wake == .stop || pending != .stop { pending = wake }
            guard let waiter else { return nil }
            self.waiter = nil
            if pending != .stop { pending = nil }
            return waiter.continuation
        }
        waiting?.resume(returning: wake)
    }

    /// Whether a stop was requested.
    var isStopping: Bool { lock.withLock { pending == .stop } }

    /// The next request, or nil when cancelled first.
    func next() async -> DaemonWake? {
        let id = lock.withLock { nextID += 1; return nextID }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: DaemonWake?? = lock.withLock {
                    if let wake = pending {
                        if pending != .stop { pending = nil }
                        return .some(wake)
                    }
                    if Task.isCancelled { return .some(nil) }
                    waiter = (id, continuation)
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiting: CheckedContinuation<DaemonWake?, Never>? = lock.withLock {
                guard let waiter, waiter.id == id else { return nil }
                self.waiter = nil
                return waiter.continuation
            }
            waiting?.resume(returning: nil)
        }
    }
}
