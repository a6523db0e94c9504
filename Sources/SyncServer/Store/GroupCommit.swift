import GRDB
import Synchronization

/// Group commit: pushes that wait for SQLite's one writer at the same time run in one write
/// transaction, each inside its own savepoint, and each is answered only once the commit that holds
/// its changes is done. One commit (one fsync) then serves every push that queued behind the last
/// one, instead of one each. A push that throws rolls back its own savepoint; the others commit.
///
/// Every caller enqueues its work and then asks for the writer itself; whichever transaction starts
/// first takes everything queued, so a caller whose work an earlier transaction took finds nothing
/// to do in its own (an empty transaction writes nothing) and only waits for its answer.
final class GroupCommit<Output: Sendable>: Sendable {
    final class Job: Sendable {
        let work: @Sendable (Database) throws -> Output
        private let state = Mutex<(result: Result<Output, any Error>?, waiter: CheckedContinuation<Output, any Error>?)>((nil, nil))

        init(_ work: @escaping @Sendable (Database) throws -> Output) {
            self.work = work
        }

        /// Delivers the outcome once; later calls are ignored.
        func complete(_ result: Result<Output, any Error>) {
            let waiter = state.withLock { state -> CheckedContinuation<Output, any Error>? in
                guard state.result == nil else { return nil }
                state.result = result
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(with: result)
        }

        func value() async throws -> Output {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<Output, any Error>? in
                    if let result = state.result { return result }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }

    /// The jobs one transaction took, readable after it ends whether it committed or not.
    private final class Taken: Sendable {
        let jobs = Mutex<[Job]>([])
    }

    private let queue = Mutex<[Job]>([])

    init() {}

    /// Runs `work` in a savepoint of a write transaction shared with the other pushes queued now, and
    /// returns once that transaction has committed (or throws its error, or the transaction's).
    func run(on writer: any DatabaseWriter, _ work: @escaping @Sendable (Database) throws -> Output) async throws -> Output {
        let job = Job(work)
        queue.withLock { $0.append(job) }
        let taken = Taken()
        do {
            let results = try await writer.write { [self] db -> [Result<Output, any Error>] in
                let jobs = queue.withLock { queued in
                    defer { queued.removeAll() }
                    return queued
                }
                taken.jobs.withLock { $0 = jobs }
                var results: [Result<Output, any Error>] = []
                results.reserveCapacity(jobs.count)
                for job in jobs {
                    do {
                        var output: Output?
                        try db.inSavepoint {
                            output = try job.work(db)
                            return .commit
                        }
                        results.append(.success(output!))
                    } catch {
                        // SQLite rolls a whole transaction back on some errors (a full disk, I/O): then
                        // nothing of this batch stands, and the rest must not run outside a transaction.
                        guard db.isInsideTransaction else { throw error }
                        results.append(.failure(error))
                    }
                }
                return results
            }
            for (job, result) in zip(taken.jobs.withLock { $0 }, results) { job.complete(result) }
        } catch {
            // The commit failed, or the transaction never began: nothing taken is stored. A job no
            // transaction took (this one's, if BEGIN failed) is answered with the error too.
            for job in taken.jobs.withLock({ $0 }) { job.complete(.failure(error)) }
            let own = queue.withLock { queued -> Bool in
                guard let index = queued.firstIndex(where: { $0 === job }) else { return false }
                queued.remove(at: index)
                return true
            }
            if own { job.complete(.failure(error)) }
        }
        return try await job.value()
    }
}
