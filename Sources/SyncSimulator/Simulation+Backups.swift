import Foundation
import GRDB
import SyncCore
import SyncServer

/// A copy of a device's file and what the simulator knew of the device when it was taken.
struct DeviceBackup {
    var path: String
    var step: Int
    /// The highest outbox counter the file had issued (local writes above it are not in the copy).
    var counter: Int64
    var replica: ReplicaID
    var seen: [CellKey: Set<Version>]
    var received: HLC
}

/// A copy of the server's store and how far the server's processing order had got.
struct ServerBackup {
    var path: String
    var step: Int
    var accepted: Int
    var expectedConflicts: Int
    var acknowledged: [ReplicaID: UInt64]
}

extension Simulation {
    var backupDirectory: String { directory + "/backups" }

    /// Copies a device's file as a nightly backup or a VM snapshot would (`VACUUM INTO`: a consistent copy).
    func backUp(_ device: SimulatedDevice) throws {
        try FileManager.default.createDirectory(atPath: backupDirectory, withIntermediateDirectories: true)
        // `.bak`: the erasure check reads live files only; a backup is outside invariant 9 until it is put back.
        let path = "\(backupDirectory)/\(device.name)-\(currentStep).sqlite.bak"
        try? FileManager.default.removeItem(atPath: path)
        try device.replica.writer.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        let counter = try Self.highestCounter(device)
        let (seen, received) = network.withState { ($0.knowledge.seen[device.name] ?? [:], $0.knowledge.received[device.name] ?? .zero) }
        device.backup = DeviceBackup(path: path, step: currentStep, counter: counter, replica: try identityReplica(device), seen: seen, received: received)
        log(device.name, "file backed up")
    }

    /// Puts a device's last backup in place of its file and restarts the device on it (SPEC 7.8).
    /// Local writes made since the copy and never stored by the server are gone with the file: the
    /// owner's loss, not the sync's. Everything else must survive.
    func rollBack(_ device: SimulatedDevice) throws {
        guard let backup = device.backup else {
            log(device.name, "no backup to roll back to")
            return
        }
        try device.replica.writer.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: device.path + suffix) }
        try FileManager.default.copyItem(atPath: backup.path, toPath: device.path)
        try restart(device)
        network.withState { state in
            state.knowledge.rollBack(device: device.name, above: backup.counter, seen: backup.seen, received: backup.received)
            state.reassigned[device.name] = nil
        }
        device.replicaID = backup.replica
        device.lastKnownReplica = backup.replica
        device.recordedCounter = backup.counter
        device.lastHLC = try readHLC(device)
        log(device.name, "file replaced by its backup of step \(backup.step) (a restore), device restarted")
    }

    /// Copies the server's store, as `sqlite3 server.sqlite ".backup nightly.sqlite"` would.
    func backUpServer() throws {
        try FileManager.default.createDirectory(atPath: backupDirectory, withIntermediateDirectories: true)
        let path = "\(backupDirectory)/server-\(currentStep).sqlite.bak"
        try? FileManager.default.removeItem(atPath: path)
        try server.store.writerForTools.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        serverBackup = network.withState { state in
            ServerBackup(path: path, step: state.step, accepted: state.knowledge.accepted.count,
                         expectedConflicts: state.knowledge.expectedConflicts.count, acknowledged: state.knowledge.serverAcknowledged)
        }
        log("server", "store backed up")
    }

    /// Stops the server, puts its last backup in place of its store and starts it again (SPEC 7.9).
    /// With `markRestored` the operator then runs `clinic-sync admin mark-restored`; without, the
    /// server must find out from the terminals.
    func restoreServer(markRestored: Bool) async throws {
        guard let backup = serverBackup else {
            log("server", "no backup to restore")
            return
        }
        try server.replace(with: backup.path)
        try serverReader?.close()
        serverReader = nil
        serverHLC = .zero
        // What every device's file holds of what it authored, now: the surviving copies of what the store forgot.
        var held: [String: Set<HeldVersion>] = [:]
        for device in devices { held[device.name] = try heldVersions(device) }
        network.withState { $0.knowledge.restoreServer(to: backup, held: held) }
        for device in devices { device.awaitsResupply = true }
        log("server", "store replaced by its backup of step \(backup.step) and restarted")
        if markRestored {
            _ = try await server.store.markRestored()
            log("server", "operator ran `admin mark-restored`: new store epoch")
        }
    }

    /// The versions a device's file holds, as (cell, version): what it would re-send after a store restore.
    private func heldVersions(_ device: SimulatedDevice) throws -> Set<HeldVersion> {
        try device.replica.writer.read { db in
            var held = Set<HeldVersion>()
            for row in try Row.fetchAll(db, sql: "SELECT tbl, row, col, hlc, replica FROM sync_cell WHERE tbl IN (3, 4)") {
                guard let table = TableID(rawValue: UInt8(truncatingIfNeeded: row["tbl"] as Int64)) else { continue }
                held.insert(HeldVersion(table: table, row: row["row"], column: UInt8(truncatingIfNeeded: row["col"] as Int64),
                                        version: Version(hlc: HLC(databaseValue: row["hlc"]), replica: ReplicaID(databaseValue: row["replica"]))))
            }
            return held
        }
    }

    /// Whether a device has heard of the restore (it records the store's new epoch when it re-sends).
    func hasResupplied(_ device: SimulatedDevice) throws -> Bool {
        let (mine, current) = (try device.replica.writer.read { db in try String?.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'store_epoch'") },
                               try serverDatabase().read { db in try String?.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'store_epoch'") })
        return mine != nil && mine == current
    }

    static func highestCounter(_ device: SimulatedDevice) throws -> Int64 {
        try device.replica.writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'") ?? 0
        }
    }

    func identityReplica(_ device: SimulatedDevice) throws -> ReplicaID {
        try device.replica.identity()?.replica ?? device.replicaID
    }
}

/// A cell version a file holds.
struct HeldVersion: Hashable {
    var table: TableID
    var row: String
    var column: UInt8
    var version: Version
}

extension SimulatedServer {
    /// Stops the server, replaces its store's files by a backup's, and starts it again.
    func replace(with backup: String) throws {
        try withStopped { path in
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            try FileManager.default.copyItem(atPath: backup, toPath: path)
        }
    }
}
