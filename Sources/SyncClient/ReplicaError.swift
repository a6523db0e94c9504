/// Why a replica operation failed. Descriptions carry ids and reasons, never patient data.
public struct ReplicaError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notEnrolled = "not_enrolled"
        case alreadyEnrolled = "already_enrolled"
        case notFound = "not_found"
        case rowDeleted = "row_deleted"
        case invalidValue = "invalid_value"
        case ambiguousResolution = "ambiguous_resolution"
    }

    public let code: Code
    public let detail: String

    init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { detail }

    /// The replica has no identity yet.
    public static let notEnrolled = ReplicaError(.notEnrolled, "this terminal is not enrolled; run `clinic-sync terminal enroll --server URL --code CODE` first")
}
