import Foundation
import SyncCore

/// A patient enquiry taken at reception. Patient data: never log it.
public struct Enquiry: Hashable, Sendable, Codable {
    public var id: String
    public var branch: String
    public var createdAt: String
    public var name: String
    public var phone: String?
    public var email: String?
    public var topic: String?
    public var message: String?
    public var preferredContact: String?
    public var consentToContact: Bool
    public var status: String
    public var assignedTo: String?
    public var followUpOn: String?
}

/// What reception types in for a new enquiry.
public struct NewEnquiry: Sendable {
    public var name: String
    public var phone: String?
    public var email: String?
    public var topic: String?
    public var message: String?
    public var preferredContact: String?
    public var consentToContact: Bool

    public init(name: String, phone: String? = nil, email: String? = nil, topic: String? = nil, message: String? = nil,
                preferredContact: String? = nil, consentToContact: Bool = true) {
        self.name = name
        self.phone = phone
        self.email = email
        self.topic = topic
        self.message = message
        self.preferredContact = preferredContact
        self.consentToContact = consentToContact
    }
}

/// A note on an enquiry. Insert-only.
public struct EnquiryNote: Hashable, Sendable, Codable {
    public var id: String
    public var enquiry: String
    public var author: String?
    public var body: String
    public var createdAt: String
}

/// A published page, treatment, condition, testimonial, practitioner or notice.
public struct ContentItem: Hashable, Sendable, Codable {
    public var id: String
    public var kind: String
    public var slug: String
    public var title: String
    public var summary: String?
    public var body: String?
    public var tags: String?
    public var published: Bool
    public var position: Int?
    public var branch: String?
}

/// A conflict as a terminal sees it.
public struct Conflict: Hashable, Sendable, Codable {
    public var id: String
    public var table: String
    public var row: String
    public var column: String
    public var winnerValue: String?
    public var winnerReplica: String
    public var loserValue: String?
    public var loserReplica: String
    /// Closed by the server, or superseded here by a newer write to the cell.
    public var resolved: Bool
    /// What the cell holds now that the conflict is resolved (`winnerValue` while it is open): after
    /// `resolve --keep mine` by the side that lost, the loser's value, not the winner's.
    public var keptValue: String?
    /// The other value written, beside ``keptValue``.
    public var alsoWrittenValue: String?
    /// The winning write was a row delete.
    public var rowDeleted: Bool
    public var detectedAt: String
}

/// A change the server refused, kept in the dead-letter table.
public struct DeadLetter: Hashable, Sendable, Codable {
    public var counter: Int64
    public var table: String
    public var row: String
    public var column: String
    public var reason: String
    public var rejectedAt: String
}

/// Who this terminal is, once enrolled.
public struct ReplicaIdentity: Hashable, Sendable {
    public var replica: ReplicaID
    public var branch: String
    public var role: DeviceRole
    public var server: String

    public init(replica: ReplicaID, branch: String, role: DeviceRole, server: String) {
        self.replica = replica
        self.branch = branch
        self.role = role
        self.server = server
    }
}

/// JSON with the role as its name, as the text output shows it.
extension ReplicaIdentity: Codable {
    enum CodingKeys: String, CodingKey { case replica, branch, role, server }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let role = try container.decode(String.self, forKey: .role)
        guard let decoded = DeviceRole(name: role) else {
            throw DecodingError.dataCorruptedError(forKey: .role, in: container, debugDescription: "unknown role \(role)")
        }
        self.init(replica: try container.decode(ReplicaID.self, forKey: .replica), branch: try container.decode(String.self, forKey: .branch),
                  role: decoded, server: try container.decode(String.self, forKey: .server))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(replica, forKey: .replica)
        try container.encode(branch, forKey: .branch)
        try container.encode(role.name, forKey: .role)
        try container.encode(server, forKey: .server)
    }
}

/// What `clinic-sync terminal status` shows.
public struct ReplicaStatus: Hashable, Sendable, Codable {
    public var path: String
    public var identity: ReplicaIdentity?
    /// The last successful sync.
    public var lastSyncAt: String?
    /// The last attempt, successful or not, by `terminal sync` or the daemon.
    public var lastAttemptAt: String?
    /// The last failed attempt and its error.
    public var lastFailureAt: String?
    public var lastFailure: String?
    /// The daemon that last ran a cycle on this file, when it did, and whether that process still runs.
    public var daemonPID: Int32?
    public var daemonSeenAt: String?
    public var daemonRunning: Bool
    public var cursor: UInt64
    /// Cell writes (and row deletions) waiting in the outbox for the server's acknowledgement.
    public var pendingChanges: Int
    /// The rows those changes touch.
    public var pendingRows: Int
    public var openConflicts: Int
    public var deadLetters: Int
    public var enquiries: Int
    public var contentItems: Int
}
