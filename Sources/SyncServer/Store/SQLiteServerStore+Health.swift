import Foundation
import GRDB
import SyncCore
import SyncStorage

/// The store's file as the server opened it: which inode on which device. A file deleted, or replaced
/// by a rename (a restore, `mv`), under the running server no longer matches, and the server would
/// otherwise keep writing acknowledged changes into an unlinked copy that nobody will ever read.
struct StoreFile: Sendable, Equatable {
    let path: String
    let device: UInt64
    let inode: UInt64

    /// The file now at `path`, or nil when there is none.
    static func current(at path: String) -> StoreFile? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return StoreFile(path: path, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Throws ``StoreError/Code/storeUnavailable`` unless `path` still names the file the server opened.
    /// One `stat` call: cheap enough for every request.
    func requireUnchanged() throws {
        guard let now = Self.current(at: path) else {
            throw StoreError(.storeUnavailable, """
                the store file \(path) was deleted or moved away while the server ran; nothing more is stored. \
                Stop the server, put the file back (or restore a backup and run `clinic-sync admin mark-restored`), and start it again
                """)
        }
        guard now == self else {
            throw StoreError(.storeUnavailable, """
                the store file \(path) was replaced by another file while the server ran; nothing more is stored in the old one. \
                Restart the server to serve the new file (if it is an older backup, run `clinic-sync admin mark-restored` first)
                """)
        }
    }
}

/// What the server has learnt about its storage while running; shared by every copy of the store value.
final class StoreCondition: @unchecked Sendable {
    private let lock = NSLock()
    private var full = false
    private var ledgerError: String?

    /// Why an append to the erasure ledger failed since the server started: that erasure has no line in it.
    var ledgerFailure: String? {
        get { lock.withLock { ledgerError } }
        set { lock.withLock { ledgerError = newValue } }
    }

    /// Whether the last write failed for want of space and no probe has succeeded since.
    var isFull: Bool {
        get { lock.withLock { full } }
        set { lock.withLock { full = newValue } }
    }
}

extension StoreError {
    /// The store's disk or quota is full. Said to terminals, so it names no path.
    static var storageFull: StoreError {
        StoreError(.storageFull, """
            the server's storage is full; nothing was stored and pending changes stay on the terminal. \
            Pulls still work; free disk space in the server's data folder
            """)
    }
}

extension SQLiteServerStore {
    /// Runs a store operation on the file the server opened, turning a full disk into
    /// ``StoreError/Code/storageFull`` (and remembering it for `/healthz`) instead of an internal error.
    func guarded<T>(_ body: () async throws -> T) async throws -> T {
        try file?.requireUnchanged()
        do {
            return try await body()
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            condition.isFull = true
            throw StoreError.storageFull
        }
    }

    /// `/healthz`: the file is still the one opened, it can be read, and, after a write failed for want
    /// of space, a small write succeeds again (a committed 16 KiB probe, removed in the same transaction,
    /// needs new pages and WAL space just as a push does).
    public func health() async -> StoreHealth {
        do {
            try file?.requireUnchanged()
            _ = try await serverID()
        } catch let error as StoreError {
            return StoreHealth(error)
        } catch {
            return StoreHealth(problem: StoreError.Code.storeUnavailable.rawValue, detail: "the store cannot be read")
        }
        if condition.isFull {
            do {
                try await writer.write { db in
                    try db.execute(sql: "INSERT OR REPLACE INTO sync_meta (key, value) VALUES ('health_probe', zeroblob(16384))")
                    try db.execute(sql: "DELETE FROM sync_meta WHERE key = 'health_probe'")
                }
                condition.isFull = false
            } catch {
                return StoreHealth(StoreError.storageFull)
            }
        }
        if let failure = condition.ledgerFailure {
            // The erasure is stored; only its copy for restores is missing. Said so that a restore is not trusted blindly.
            return StoreHealth(problem: "erasure_ledger_unwritable", detail: "\(failure); a restore of an older backup may bring erased enquiries back until this is fixed")
        }
        return .healthy
    }

    /// Refuses, before SQLite touches anything, a store that cannot be opened for writing: a read-only
    /// file or folder would otherwise leave read-only `-wal`/`-shm` files behind that block the next
    /// start too; and a missing store file beside its `-wal`/`-shm` means the store was deleted or moved
    /// away, not that a new, empty one is wanted (every terminal would be told to enroll again).
    static func checkFiles(in directory: String, path: String) throws {
        let fileManager = FileManager.default
        let companions = [path + "-wal", path + "-shm"]
        if !fileManager.fileExists(atPath: path), let leftover = companions.first(where: fileManager.fileExists(atPath:)) {
            throw StoreError(.storeUnavailable, """
                \(path) is missing but \((leftover as NSString).lastPathComponent) is there: the store was deleted or moved away. \
                Put it back (or restore a backup and run `clinic-sync admin mark-restored --data \(directory)`); \
                to start an empty store here on purpose, remove \(companions.joined(separator: " and ")) first
                """)
        }
        for file in [directory, path] + companions where fileManager.fileExists(atPath: file) {
            var info = stat()
            let ownerCannotWrite = stat(file, &info) == 0 && info.st_mode & S_IWUSR == 0
            if ownerCannotWrite || access(file, W_OK) != 0 {
                throw StoreError(.storeUnavailable, """
                    \(file) is read-only\(ownerCannotWrite ? " (mode \(String(info.st_mode & 0o777, radix: 8)))" : ""): \
                    the server must write there. Make it writable by the server's user (chmod u+w), or mount the data folder read-write
                    """)
            }
        }
    }
}
