/// What a device may do. Terminals write their branch's enquiries and notes; editors write anything.
public enum DeviceRole: UInt8, CaseIterable, Sendable, Codable {
    case terminal = 1
    case editor = 2

    public var name: String { self == .terminal ? "terminal" : "editor" }
    public init?(name: String) {
        guard let role = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = role
    }
}

/// A change the client pushes, numbered by its outbox so that a replayed push is recognised.
public struct PushedChange: Hashable, Sendable {
    /// Per-replica, strictly increasing within a request.
    public var counter: UInt64
    public var change: Change

    public init(counter: UInt64, change: Change) {
        self.counter = counter
        self.change = change
    }
}

/// A cell version the server sends back, with the seq it was committed at.
public struct PulledChange: Hashable, Sendable {
    /// Strictly increasing within a response.
    public var seq: UInt64
    /// Writes carry `baseSeq` 0 here: the seq is the cell's own.
    public var change: Change

    public init(seq: UInt64, change: Change) {
        self.seq = seq
        self.change = change
    }
}

/// Why the server refused one pushed change. The rest of the push is unaffected.
public enum RejectionReason: UInt8, CaseIterable, Sendable {
    /// The row belongs to another branch.
    case outOfScope = 1
    /// The device's role may not write this table.
    case forbidden = 2
    /// Unknown column, wrong type or a value outside the allowed set.
    case invalid = 3
    /// Notes are insert-only; conflict records are the server's.
    case immutable = 4

    public var name: String {
        switch self {
        case .outOfScope: "out_of_scope"
        case .forbidden: "forbidden"
        case .invalid: "invalid"
        case .immutable: "immutable"
        }
    }

    public init?(name: String) {
        guard let reason = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = reason
    }
}

/// One refused change, named by its outbox counter.
public struct Rejection: Hashable, Sendable {
    public var counter: UInt64
    public var reason: RejectionReason

    public init(counter: UInt64, reason: RejectionReason) {
        self.counter = counter
        self.reason = reason
    }
}

/// A row left the caller's scope at `seq` (an enquiry moved to another branch): purge it.
public struct ScopeExit: Hashable, Sendable {
    public var seq: UInt64
    public var table: TableID
    public var row: String

    public init(seq: UInt64, table: TableID, row: String) {
        self.seq = seq
        self.table = table
        self.row = row
    }
}

/// `POST /v1/sync` body: push the outbox, and ask for a page of what changed after `cursor`.
public struct SyncRequest: Hashable, Sendable {
    public var replica: ReplicaID
    /// The client's clock when it built the request.
    public var clock: HLC
    /// Pull cells with seq greater than this.
    public var cursor: UInt64
    /// Most cells wanted in the pulled page (0: the server's default).
    public var pageLimit: UInt32
    public var changes: [PushedChange]

    public init(replica: ReplicaID, clock: HLC, cursor: UInt64, pageLimit: UInt32 = 0, changes: [PushedChange] = []) {
        self.replica = replica
        self.clock = clock
        self.cursor = cursor
        self.pageLimit = pageLimit
        self.changes = changes
    }
}

/// `POST /v1/sync` answer: the acknowledgement of the push and one page of the pull.
public struct SyncResponse: Hashable, Sendable {
    /// The server's clock: the client advances past it.
    public var clock: HLC
    /// The highest counter the server has stored for this replica (accepted or rejected).
    public var acknowledged: UInt64
    public var rejected: [Rejection]
    public var changes: [PulledChange]
    public var exits: [ScopeExit]
    /// The cursor to send next time.
    public var cursor: UInt64
    /// More pages are waiting after `cursor`.
    public var more: Bool

    public init(
        clock: HLC, acknowledged: UInt64, rejected: [Rejection] = [], changes: [PulledChange] = [],
        exits: [ScopeExit] = [], cursor: UInt64, more: Bool
    ) {
        self.clock = clock
        self.acknowledged = acknowledged
        self.rejected = rejected
        self.changes = changes
        self.exits = exits
        self.cursor = cursor
        self.more = more
    }
}

/// `POST /v1/enroll` body: a one-time code, exchanged for a device token.
public struct EnrollRequest: Hashable, Sendable {
    public var code: String
    public var deviceName: String

    public init(code: String, deviceName: String) {
        self.code = code
        self.deviceName = deviceName
    }
}

/// `POST /v1/enroll` answer.
public struct EnrollResponse: Hashable, Sendable {
    /// The bearer token for every later request. Shown once; the server keeps only its SHA-256.
    public var token: String
    public var replica: ReplicaID
    public var branch: String
    public var role: DeviceRole
    public var clock: HLC

    public init(token: String, replica: ReplicaID, branch: String, role: DeviceRole, clock: HLC) {
        self.token = token
        self.replica = replica
        self.branch = branch
        self.role = role
        self.clock = clock
    }
}

/// Any v1 frame.
public enum Frame: Hashable, Sendable {
    case syncRequest(SyncRequest)
    case syncResponse(SyncResponse)
    case enrollRequest(EnrollRequest)
    case enrollResponse(EnrollResponse)
}

/// The frame type byte.
public enum FrameType: UInt8, Sendable {
    case syncRequest = 1
    case syncResponse = 2
    case enrollRequest = 3
    case enrollResponse = 4
}
