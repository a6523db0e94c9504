import Foundation
import GRDB
import SyncCore
import SyncStorage

extension SyncEngine {
    /// One cycle, as ``sync(progress:)``, that also records its outcome in the replica for
    /// `terminal status`: when it was tried and, on failure, when and why (the error carries no
    /// patient data). `daemon` is the pid of the daemon running it, so status can tell whether one runs.
    @discardableResult
    public func syncRecordingOutcome(daemon: Int32? = nil, progress: (@Sendable (SyncProgress) -> Void)? = nil) async throws -> SyncSummary {
        do {
            let summary = try await sync(progress: progress)
            try? await record(failure: nil, daemon: daemon)
            return summary
        } catch let error as SyncError {
            try? await record(failure: error.description, daemon: daemon)
            throw error
        } catch where StorageConfiguration.isStorageFull(error) {
            // A pulled page or an ack could not be stored; everything committed before stays.
            throw ReplicaError.storageFull(at: replica.path)
        } catch {
            try? await record(failure: "\(type(of: error))", daemon: daemon)
            throw error
        }
    }

    private func record(failure: String?, daemon: Int32?) async throws {
        let now = Timestamp.iso8601(milliseconds: replica.wall.milliseconds())
        try await replica.writer.write { db in
            try SyncMeta.set(MetaKey.lastAttemptAt, now, in: db)
            if let failure {
                try SyncMeta.set(MetaKey.lastFailureAt, now, in: db)
                try SyncMeta.set(MetaKey.lastFailure, failure, in: db)
            }
            if let daemon {
                try SyncMeta.set(MetaKey.daemonPID, Int64(daemon), in: db)
                try SyncMeta.set(MetaKey.daemonSeenAt, now, in: db)
            }
        }
    }
}
