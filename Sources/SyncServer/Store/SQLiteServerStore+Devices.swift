import Foundation
import GRDB
import SyncCore
import SyncStorage

/// One line of the audit log: what happened, to which device and branch, with ids, counts and codes
/// only — never patient text.
public struct AuditEvent: Codable, Sendable, Equatable {
    public var id: Int64
    public var at: Date
    /// `device_enrolled`, `device_revoked`, `device_removed`, `device_move_requested`, `device_moved`,
    /// `enquiry_erased`, `store_restored`, `backup`, `sync`.
    public var kind: String
    public var device: String?
    public var branch: String?
    public var detail: [String: String]
}

extension SQLiteServerStore {
    /// Appends an audit event inside the caller's transaction, so it commits with what it records.
    static func audit(_ kind: String, device: String? = nil, branch: String? = nil, detail: [String: String] = [:], at: Double, db: Database) throws {
        let json = String(decoding: try JSONEncoder.sorted.encode(detail), as: UTF8.self)
        try db.execute(sql: "INSERT INTO audit_event (at, kind, device, branch, detail) VALUES (?, ?, ?, ?, ?)",
                       arguments: [at, kind, device, branch, json])
    }

    var now: Double { Double(clock.milliseconds()) / 1000 }

    /// Records an event that is not part of a store write (a backup).
    public func recordAudit(_ kind: String, detail: [String: String]) async throws {
        try await guarded {
            try await writer.write { [now] db in try Self.audit(kind, detail: detail, at: now, db: db) }
        }
    }

    /// Audit events, oldest first: since `since`, of one device if given, at most `limit` (the newest).
    public func auditEvents(since: Date? = nil, device: String? = nil, limit: Int = 1_000) async throws -> [AuditEvent] {
        try await writer.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM audit_event WHERE at >= ? AND (? IS NULL OR device = ?) ORDER BY id DESC LIMIT ?
                """, arguments: [since?.timeIntervalSince1970 ?? 0, device, device, limit])
            return rows.reversed().map { row in
                let detail = (row["detail"] as String?).flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) } ?? [:]
                return AuditEvent(id: row["id"], at: Date(timeIntervalSince1970: row["at"]), kind: row["kind"], device: row["device"],
                                  branch: row["branch"], detail: detail)
            }
        }
    }

    /// Per-push events are many; they are kept this long. Every other kind is kept for good.
    static let syncAuditRetention: Double = 400 * 86_400

    /// Drops per-push audit events past their retention; run when the server opens the store.
    public func pruneAudit() async throws {
        try await guarded {
            try await writer.write { [now] db in
                try db.execute(sql: "DELETE FROM audit_event WHERE kind = 'sync' AND at < ?", arguments: [now - Self.syncAuditRetention])
            }
        }
    }

    /// Moves a device to `branch`. A device not yet enrolled moves at once. An enrolled one moves at its
    /// next sync that has nothing left to push (SPEC 8.6): what it wrote for its old branch is stored
    /// there first; then it purges the old branch's enquiries and reads the new one's.
    /// Moving it back to its own branch before then cancels the move.
    public func moveDevice(id: String, to branch: String) async throws -> Device {
        try await guarded {
            try await writer.write { [now] db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM device WHERE id = ?", arguments: [id]) else {
                    throw StoreError(.unknownDevice, "no device '\(id)'")
                }
                var device = Self.device(from: row)
                guard !device.isRevoked else { throw StoreError(.invalidWrite, "device \(id) is revoked; add a new device at \(branch) instead") }
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sync_cell WHERE tbl = ? AND row = ? LIMIT 1",
                                        arguments: [Int64(TableID.branch.rawValue), branch]) != nil else {
                    throw StoreError(.unknownBranch, "no branch '\(branch)'; add it with `clinic-sync admin branch add`")
                }
                if device.enrolledAt == nil {
                    device.branch = branch
                    try db.execute(sql: "UPDATE device SET branch = ?, moving_to = NULL WHERE id = ?", arguments: [branch, id])
                    try Self.audit("device_moved", device: id, branch: branch, detail: ["from": row["branch"] as String], at: now, db: db)
                    return device
                }
                device.movingTo = branch == device.branch ? nil : branch
                try db.execute(sql: "UPDATE device SET moving_to = ? WHERE id = ?", arguments: [device.movingTo, id])
                try Self.audit("device_move_requested", device: id, branch: device.branch, detail: ["to": branch], at: now, db: db)
                return device
            }
        }
    }

    /// Routine rotation: the device's next sync answer carries a new token (SPEC 8.2). For a token
    /// that leaked, revoke the device instead and enroll its file again with a new code.
    public func requestTokenRotation(id: String) async throws -> Device {
        try await guarded {
            try await writer.write { [now] db in
                try db.execute(sql: "UPDATE device SET rotate_requested = 1 WHERE id = ? AND revoked_at IS NULL AND enrolled_at IS NOT NULL", arguments: [id])
                guard db.changesCount > 0 else {
                    let exists = try Bool.fetchOne(db, sql: "SELECT 1 FROM device WHERE id = ?", arguments: [id]) != nil
                    throw StoreError(exists ? .invalidWrite : .unknownDevice, exists ? "device \(id) is revoked or not enrolled: it has no token to rotate" : "no device '\(id)'")
                }
                try Self.audit("token_rotation_requested", device: id, at: now, db: db)
                return Self.device(from: try Row.fetchOne(db, sql: "SELECT * FROM device WHERE id = ?", arguments: [id])!)
            }
        }
    }

    /// At a sync with nothing to push from a device an operator moved: the move takes effect, and the
    /// device is told (409 `device_moved`) to purge its old branch and read the new one from the start.
    func completeMove(of device: Device) async throws -> Never {
        guard let branch = device.movingTo else { preconditionFailure("no move pending") }
        try await writer.write { [now] db in
            try db.execute(sql: "UPDATE device SET branch = ?, moving_to = NULL WHERE id = ?", arguments: [branch, device.id])
            try Self.audit("device_moved", device: device.id, branch: branch, detail: ["from": device.branch], at: now, db: db)
        }
        var error = StoreError(.deviceMoved, """
            this device was moved to branch \(branch): delete what it holds of branch \(device.branch) and read \(branch)'s from the start
            """)
        error.branch = branch
        throw error
    }
}

extension JSONEncoder {
    /// Sorted keys: the same detail is always the same text.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }
}
