import Foundation
import SyncCore

/// An enrolled (or pending) device.
public struct Device: Hashable, Sendable {
    public var id: String
    public var name: String
    public var branch: String
    public var role: DeviceRole
    /// Assigned at enrollment.
    public var replica: ReplicaID?
    public var createdAt: Date
    public var enrolledAt: Date?
    public var revokedAt: Date?
    public var lastSeenAt: Date?
    /// The highest outbox counter stored for this device's replica.
    public var acknowledged: UInt64
    /// The branch an operator moved it to (`admin device move`); it takes effect at the device's next
    /// sync that has nothing left to push, so nothing it wrote for its old branch is refused.
    public var movingTo: String? = nil
    /// Local changes the terminal had not yet sent, and its app version, as it said in its last sync.
    public var pending: Int? = nil
    public var appVersion: String? = nil
    /// An operator asked for a new token (`admin device rotate-token`): the next sync answer carries one.
    public var rotateRequested = false
    /// The last request that carried its token, whatever became of it (a refused or failed sync too,
    /// and after revocation); `lastSeenAt` is its last successful sync. Recorded at most once a minute.
    public var lastContactAt: Date? = nil

    public var isRevoked: Bool { revokedAt != nil }

    /// Whether an enrolled, unrevoked device has not synced for longer than `threshold` seconds
    /// (never synced counts from its enrollment).
    public func isStale(now: Date, threshold: TimeInterval) -> Bool {
        guard !isRevoked, let since = lastSeenAt ?? enrolledAt else { return false }
        return now.timeIntervalSince(since) > threshold
    }
}

/// JSON for scripts: the role as its name, as the text output shows it, and the replica id beside
/// the device id so conflicts (which name replicas) can be traced to a device.
extension Device: Encodable {
    enum CodingKeys: String, CodingKey {
        case id, name, branch, role, replica, createdAt, enrolledAt, revokedAt, lastSeenAt, acknowledged, movingTo, pending, appVersion, lastContactAt
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(branch, forKey: .branch)
        try container.encode(role.name, forKey: .role)
        try container.encode(replica, forKey: .replica)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(enrolledAt, forKey: .enrolledAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encode(lastSeenAt, forKey: .lastSeenAt)
        try container.encode(acknowledged, forKey: .acknowledged)
        try container.encode(movingTo, forKey: .movingTo)
        try container.encode(pending, forKey: .pending)
        try container.encode(appVersion, forKey: .appVersion)
        try container.encode(lastContactAt, forKey: .lastContactAt)
    }
}

/// A clinic branch.
public struct BranchInfo: Hashable, Sendable, Codable {
    public var id: String
    public var name: String
    public var address: String?
    public var phone: String?
}

/// A recorded conflict: two concurrent writes to one cell, or a write that met a deleted row.
public struct ConflictRecord: Hashable, Sendable, Codable {
    public var id: String
    public var table: String
    public var row: String
    public var column: String
    public var winnerReplica: String
    public var loserReplica: String
    /// The devices behind the two replica ids ("server" for the server's own writes), when known.
    public var winnerDevice: String?
    public var loserDevice: String?
    public var branch: String
    public var resolved: Bool
    public var detectedAt: String
}

/// A cell written by the server itself (admin tools, content import).
public struct CellWrite: Hashable, Sendable {
    public var table: TableID
    public var row: String
    public var column: ColumnID
    public var value: Value

    public init(_ table: TableID, _ row: String, _ column: ColumnID, _ value: Value) {
        self.table = table
        self.row = row
        self.column = column
        self.value = value
    }
}

/// Counts from one sync, for metrics and logs (never values).
public struct SyncOutcome: Sendable {
    public var response: SyncResponse
    public var accepted: Int
    public var rejected: Int
    public var conflicts: Int
    /// The store's epoch after this sync (SPEC 7.9), sent as `ClinicSync-Store-Epoch`.
    public var epoch: String
    /// This request proved the store was restored from an older copy, and the epoch changed.
    public var detectedRestore = false
    /// The changes this request refused for the first time, by reason (replays re-report, never re-count).
    public var rejectedByReason: [RejectionReason: Int] = [:]
    /// How long the push waited for the store's writer before its transaction began; nil when it wrote nothing.
    public var writeWait: Duration?
}

/// What a terminal says it already knows of the store, beside its frame (SPEC 7.9): evidence that
/// the store went back in time.
public struct SyncEvidence: Hashable, Sendable {
    /// The `acknowledged` counter the store last told this replica (`ClinicSync-Acknowledged`).
    public var acknowledged: UInt64?
    /// What the terminal has not yet sent (`ClinicSync-Pending`) and its version (`ClinicSync-App-Version`),
    /// for `admin device list`.
    public var pending: Int?
    public var appVersion: String?
    /// The terminal asks for a new device token (`ClinicSync-Rotate-Token`, SPEC 8.2).
    public var rotateToken = false

    public init(acknowledged: UInt64? = nil, pending: Int? = nil, appVersion: String? = nil, rotateToken: Bool = false) {
        self.acknowledged = acknowledged
        self.pending = pending
        self.appVersion = appVersion
        self.rotateToken = rotateToken
    }
}

/// What an operator watches, counted by the store for `/metrics`. Counts only: no ids, no values.
public struct StoreStatistics: Sendable, Equatable {
    /// Enrolled, unrevoked devices.
    public var activeDevices = 0
    /// Of those, the ones that have not synced within the stale threshold.
    public var staleDevices = 0
    /// Seconds since the least recent sync of an active device (its enrollment if it never synced).
    public var oldestSyncAge: Double = 0
    public var openConflicts = 0
    /// Refused pushed changes the server still holds, by reason name.
    public var rejectionsByReason: [String: Int] = [:]

    public init() {}
}

/// Why the store refused a request. Descriptions carry no patient data.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidEnrollmentCode = "invalid_enrollment_code"
        case unknownBranch = "unknown_branch"
        case unknownDevice = "unknown_device"
        case clockDrift = "clock_drift"
        case tooManyChanges = "too_many_changes"
        case replicaMismatch = "replica_mismatch"
        case invalidWrite = "invalid_write"
        case replicaRolledBack = "replica_rolled_back"
        /// The data folder holds no store and the caller did not ask to create one.
        case noStore = "no_store"
        /// The row (or device) an admin named does not exist.
        case notFound = "not_found"
        /// The disk (or filesystem quota) holding the store is full: reads still work, writes do not.
        case storageFull = "storage_full"
        /// The store cannot be used as it is: its file was deleted or replaced under the running server,
        /// or it cannot be opened for writing (read-only file, leftovers of a store that is gone).
        case storeUnavailable = "store_unavailable"
        /// An operator moved the device to another branch (`admin device move`): it purges what it
        /// holds of the old one and reads again from the start.
        case deviceMoved = "device_moved"
    }

    public let code: Code
    public let detail: String
    /// With `replicaRolledBack`: the replica id the device carries on under, and the server's clock.
    public var replica: ReplicaID?
    public var clock: HLC?
    /// With `deviceMoved`: the device's new branch.
    public var branch: String?

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code.rawValue): \(detail)" }

    /// The device's file was restored from an older copy (SPEC 7.8): it carries on as `replica`.
    static func rolledBack(to replica: ReplicaID, clock: HLC) -> StoreError {
        var error = StoreError(.replicaRolledBack, """
            this replica re-used counters for different changes (its file was restored from an older copy); \
            carry on as replica \(replica) and push again
            """)
        error.replica = replica
        error.clock = clock
        return error
    }
}

/// Whether the store can serve: what `/healthz` reports. Codes are stable; details carry no patient data.
public struct StoreHealth: Sendable, Equatable {
    /// Nil when healthy; otherwise a stable code such as `storage_full` or `store_unavailable`.
    public var problem: String?
    /// What happened and what to do, for the operator.
    public var detail: String?

    public static let healthy = StoreHealth()

    public init(problem: String? = nil, detail: String? = nil) {
        self.problem = problem
        self.detail = detail
    }

    public init(_ error: StoreError) {
        self.init(problem: error.code.rawValue, detail: error.detail)
    }

    public var isHealthy: Bool { problem == nil }
}

/// Where the server keeps the change log, devices and branches.
///
/// SQLite is the embedded default (``SQLiteServerStore``). A PostgreSQL store can implement the same
/// protocol; there, seqs must be issued so that a transaction committing late never lands behind a
/// cursor that has already passed it (invariant 3).
public protocol ServerStore: Sendable {
    /// This store's id (its server replica id, hex), stable across restarts; `/healthz` shows it.
    func serverID() async throws -> String
    /// The device holding this token hash, revoked or not. A device's next token (SPEC 8.2), used for
    /// the first time, becomes its token, and the one it replaces stops working.
    func device(tokenHash: String) async throws -> Device?
    /// Records the token a device is being given in a sync answer; its current token works until the
    /// new one is first used, so a lost answer locks nobody out.
    func setNextToken(deviceID: String, tokenHash: String) async throws
    /// Records that a request carried the device's token (at most once a minute; a failure to record is ignored).
    func noteContact(_ device: Device) async
    /// Exchanges a one-time enrollment code for a device token.
    func enroll(codeHash: String, deviceName: String, tokenHash: String) async throws -> (Device, HLC)
    /// Stores a push and reads the next page of the pull, for an authenticated device.
    func sync(_ request: SyncRequest, from device: Device, limits: SyncLimits, evidence: SyncEvidence) async throws -> SyncOutcome
    /// Marks the store as restored from an older copy: a new epoch, which every terminal notices on its
    /// next sync and answers by re-sending what it holds (SPEC 7.9). Returns the new epoch.
    func markRestored() async throws -> String

    /// Adds or updates a branch.
    func saveBranch(id: String, name: String, address: String?, phone: String?) async throws
    /// Creates a device awaiting enrollment with the given code hash.
    func addDevice(branch: String, name: String, role: DeviceRole, codeHash: String, codeExpiresAt: Date) async throws -> Device
    func devices() async throws -> [Device]
    /// Revokes a device; its next request is refused.
    func revokeDevice(id: String) async throws -> Device
    /// Writes cells as the server's own changes (content import, admin edits).
    func write(_ cells: [CellWrite]) async throws
    /// Erases a row and everything stored about it (UK GDPR erasure).
    func erase(_ table: TableID, row: String) async throws
    func conflicts(includeResolved: Bool) async throws -> [ConflictRecord]
    /// Counts for `/metrics`, at the store's clock; a device is stale after `staleAfter` seconds without a sync.
    func statistics(staleAfter: TimeInterval) async throws -> StoreStatistics
    /// Whether the store can serve reads and writes now (`/healthz`).
    func health() async -> StoreHealth
}

extension ServerStore {
    /// A store that can say who it is is taken as healthy; stores with more to check say more.
    public func health() async -> StoreHealth {
        do {
            _ = try await serverID()
            return .healthy
        } catch {
            return StoreHealth(problem: "store_unavailable", detail: "the store cannot be read")
        }
    }
}
