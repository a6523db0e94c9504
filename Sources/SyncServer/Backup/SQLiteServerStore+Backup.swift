import Foundation
import GRDB
import SyncCore
import SyncStorage

/// What `admin backup` made.
public struct BackupReport: Codable, Sendable {
    public var path: String
    /// The store as copied, and the file written (smaller when compressed).
    public var storeBytes: Int64
    public var fileBytes: Int64
    public var compressed: Bool
    public var storeID: String
    public var epoch: String
    /// The last change the backup holds: terminals that saw more re-send it after a restore.
    public var lastSeq: Int64
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case path, compressed, epoch, seconds
        case storeBytes = "store_bytes", fileBytes = "file_bytes", storeID = "store_id", lastSeq = "last_seq"
    }
}

/// What `admin restore` did.
public struct RestoreReport: Codable, Sendable {
    public var from: String
    public var storeID: String
    public var lastSeq: Int64
    public var epoch: String
    /// Erasures from the ledger applied again because the backup predates them.
    public var erasuresReplayed: Int
    /// Where the store that was replaced now is (nothing is deleted); nil when there was none.
    public var previousStore: String?

    enum CodingKeys: String, CodingKey {
        case from, epoch
        case storeID = "store_id", lastSeq = "last_seq", erasuresReplayed = "erasures_replayed", previousStore = "previous_store"
    }
}

extension SQLiteServerStore {
    /// A consistent copy of the store while the server runs: `VACUUM INTO` reads one snapshot (WAL mode:
    /// writers carry on) and writes a compact file, owner-only, optionally gzip-compressed. `destination`
    /// appears only once complete and synced; an existing file is never overwritten.
    public func backup(to destination: String, compress: Bool) async throws -> BackupReport {
        let started = ContinuousClock.now
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw BackupError("\(destination) already exists; choose a new name (e.g. with the date in it)")
        }
        let folder = (destination as NSString).deletingLastPathComponent
        let staging = (folder.isEmpty ? "." : folder) + "/.\((destination as NSString).lastPathComponent).partial-\(UUID().uuidString.prefix(8))"
        let compressedStaging = staging + ".gz"
        defer { for path in [staging, compressedStaging] { try? FileManager.default.removeItem(atPath: path) } }
        try PrivateFile.create(staging).close()
        try await guarded {
            try await writer.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [staging]) }
        }
        // Read from the copy, not the live store: what the snapshot holds, whatever was written since.
        let (storeID, epoch, lastSeq) = try Self.identity(of: staging)
        let storeBytes = try Self.size(of: staging)
        var written = staging
        if compress {
            try GzipFile.compress(staging, to: compressedStaging)
            written = compressedStaging
        } else {
            try Self.synchronize(staging)
        }
        guard link(written, destination) == 0 else {
            throw BackupError("cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        PrivateFile.syncDirectory(folder.isEmpty ? "." : folder)
        return BackupReport(
            path: destination, storeBytes: storeBytes, fileBytes: try Self.size(of: destination), compressed: compress,
            storeID: storeID, epoch: epoch, lastSeq: lastSeq, seconds: (ContinuousClock.now - started).seconds)
    }

    /// Puts a backup back in place of the store in `directory`, with the server stopped.
    ///
    /// The backup is checked before anything is touched (a SQLite store that passes `integrity_check`,
    /// of this folder's store unless the folder has none). The store it replaces is moved aside, never
    /// deleted. Then the store is marked restored (SPEC 7.9: terminals re-send what it lacks) and the
    /// erasure ledger is replayed, so enquiries erased after the backup was taken stay erased.
    public static func restore(directory: String, from backup: String) async throws -> RestoreReport {
        guard FileManager.default.fileExists(atPath: backup) else { throw BackupError("no backup at \(backup)") }
        if ServerLock.isHeld(directory: directory) {
            throw BackupError("the server is running on \(directory) (it holds \(ServerLock.path(in: directory))); stop it first, e.g. `systemctl stop clinic-sync-server`; nothing was changed")
        }
        try PrivateFiles.createDirectory(directory)
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
        let staging = (directory as NSString).appendingPathComponent(".restore-\(stamp).partial")
        defer { try? FileManager.default.removeItem(atPath: staging) }
        try? FileManager.default.removeItem(atPath: staging)
        if GzipFile.isGzip(backup) {
            try GzipFile.decompress(backup, to: staging)
        } else {
            try copy(backup, to: staging)
        }
        let (storeID, lastSeq) = try check(staging, named: backup, for: directory)

        let path = Self.path(in: directory)
        var previous: String?
        if FileManager.default.fileExists(atPath: path) {
            let aside = (directory as NSString).appendingPathComponent("replaced-\(stamp)")
            try PrivateFiles.createDirectory(aside)
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                try FileManager.default.moveItem(atPath: path + suffix, toPath: (aside as NSString).appendingPathComponent(fileName + suffix))
            }
            previous = aside
        }
        guard rename(staging, path) == 0 else { throw BackupError("cannot move the backup into place at \(path): \(String(cString: strerror(errno)))") }
        PrivateFile.syncDirectory(directory)

        let store = try SQLiteServerStore(directory: directory)
        let epoch = try await store.markRestored()
        let replayed = try await store.replayErasures(ErasureLedger(directory: directory).entries())
        return RestoreReport(from: backup, storeID: storeID, lastSeq: lastSeq, epoch: epoch, erasuresReplayed: replayed, previousStore: previous)
    }

    /// Applies again every ledger erasure the store does not hold as an erasure; returns how many.
    func replayErasures(_ entries: [ErasureLedger.Entry]) async throws -> Int {
        var seen = Set<String>()
        let wanted = entries.filter { $0.table == TableID.enquiry.name && seen.insert($0.row).inserted }
        guard !wanted.isEmpty else { return 0 }
        let replayed = try await guarded {
            try await writer.write { db -> Int in
                var session = try WriteSession(db: db, store: self)
                var replayed = 0
                for entry in wanted {
                    let tombstone = try Int64.fetchOne(db, sql: "SELECT value FROM sync_cell WHERE tbl = ? AND row = ? AND col = 0",
                                                       arguments: [Int64(TableID.enquiry.rawValue), entry.row])
                    if tombstone == Self.erasedTombstone { continue }
                    let change = Change(table: .enquiry, row: entry.row, operation: .erase, version: Version(hlc: session.tick(), replica: session.serverReplica))
                    // A row the backup never held gets its tombstone in its branch: a terminal's late copy is never stored.
                    try session.apply([(change, entry.branch)])
                    replayed += 1
                }
                try session.finish()
                return replayed
            }
        }
        if replayed > 0 { await StorageConfiguration.checkpointTruncating(writer) }
        return replayed
    }

    /// Refuses a file that is not a sound store, or is another server's store.
    private static func check(_ staging: String, named backup: String, for directory: String) throws -> (String, Int64) {
        let (storeID, lastSeq): (String, Int64)
        do {
            var configuration = Configuration()
            configuration.readonly = true
            let queue = try DatabaseQueue(path: staging, configuration: configuration)
            (storeID, lastSeq) = try queue.read { db in
                let result = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                guard result == ["ok"] else { throw BackupError("\(backup) is damaged (integrity_check: \(result.prefix(3).joined(separator: "; "))); nothing was changed") }
                guard try db.tableExists("sync_cell"), try db.tableExists("sync_meta"), try SyncMeta.get("server_replica", in: db) as Int64? != nil else {
                    throw BackupError("\(backup) is a SQLite file but not a ClinicSync server store; nothing was changed")
                }
                return (try serverReplica(db).description, try SyncMeta.get("last_seq", in: db) ?? 0)
            }
            try queue.close()
        } catch let error as BackupError {
            throw error
        } catch {
            throw BackupError("\(backup) is not a ClinicSync server store (or not a complete one); nothing was changed")
        }
        let marker = markerPath(in: directory)
        if let held = try? String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), held != storeID {
            throw BackupError("\(backup) is a backup of store \(storeID), but \(directory) holds store \(held); nothing was changed. Restore it into an empty folder, or delete \(marker) if this is intended")
        }
        return (storeID, lastSeq)
    }

    private static func identity(of path: String) throws -> (storeID: String, epoch: String, lastSeq: Int64) {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            (try serverReplica(db).description, try SyncMeta.get(epochKey, in: db) ?? "", try SyncMeta.get("last_seq", in: db) ?? 0)
        }
    }

    private static func copy(_ source: String, to destination: String) throws {
        guard let input = FileHandle(forReadingAtPath: source) else { throw BackupError("cannot read \(source)") }
        defer { try? input.close() }
        let output = try PrivateFile.create(destination)
        defer { try? output.close() }
        while let block = try input.read(upToCount: GzipFile.chunk), !block.isEmpty { try output.write(contentsOf: block) }
        try output.synchronize()
    }

    private static func synchronize(_ path: String) throws {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw BackupError("cannot open \(path)") }
        defer { try? handle.close() }
        try handle.synchronize()
    }

    private static func size(of path: String) throws -> Int64 {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
    }
}

/// The data folder's lock, held by a running `serve` (flock(2), released when the process dies,
/// even by SIGKILL): a restore refuses to swap the store under a running server, and a second server
/// refuses to share the folder.
public final class ServerLock: Sendable {
    let descriptor: Int32

    public static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent("server.lock")
    }

    private init(descriptor: Int32) { self.descriptor = descriptor }
    deinit { close(descriptor) }

    /// Takes the lock, or says who holds it.
    public static func acquire(directory: String) throws -> ServerLock {
        let path = path(in: directory)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw BackupError("another server is already running on \(directory) (it holds \(path)); stop it first, or give this one another --data")
        }
        return ServerLock(descriptor: fd)
    }

    /// Whether a running server holds the folder's lock.
    public static func isHeld(directory: String) -> Bool {
        let fd = open(path(in: directory), O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return errno == EWOULDBLOCK }
        flock(fd, LOCK_UN)
        return false
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
