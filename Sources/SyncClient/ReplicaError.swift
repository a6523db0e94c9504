/// Why a replica operation failed. Descriptions carry ids and reasons, never patient data.
public struct ReplicaError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notEnrolled = "not_enrolled"
        /// No replica file at the given path (and the caller did not ask to create one).
        case noReplica = "no_replica"
        case alreadyEnrolled = "already_enrolled"
        case notFound = "not_found"
        case rowDeleted = "row_deleted"
        case invalidValue = "invalid_value"
        case ambiguousResolution = "ambiguous_resolution"
        /// The disk holding the replica is full: reads work, writes do not.
        case storageFull = "storage_full"
    }

    public let code: Code
    public let detail: String

    init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { detail }

    /// No replica file at `path`.
    public static func noReplica(at path: String) -> ReplicaError {
        ReplicaError(.noReplica, "no replica at \(path); check --db (or $CLINIC_SYNC_DB), or create one with `clinic-sync terminal enroll --db \(path) --server URL --code CODE`")
    }

    /// The disk holding the replica at `path` is full.
    public static func storageFull(at path: String) -> ReplicaError {
        ReplicaError(.storageFull, "the disk holding \(path) is full: nothing was written (reading still works); free some space and try again")
    }

    /// The replica has no identity yet.
    public static let notEnrolled = ReplicaError(.notEnrolled, "this terminal is not enrolled; run `clinic-sync terminal enroll --server URL --code CODE` first")
}
