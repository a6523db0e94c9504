import GRDB

/// The SQLite settings both sides run with (invariant 6 and 9).
package enum StorageConfiguration {
    /// WAL, `synchronous=FULL` for acknowledged data, `secure_delete` so erased text leaves the file,
    /// foreign keys off (rows arrive in any order), and a busy timeout so an app, the CLI and the
    /// daemon can share one replica.
    ///
    /// `exclusive` is for a file no other process holds open on a full disk: SQLite cannot create the
    /// `-shm` file a WAL reader needs there, but in exclusive locking mode it keeps that index in memory
    /// (the file is WAL already, so the journal mode is left as it is).
    package static func make(readonly: Bool = false, exclusive: Bool = false) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.busyMode = .timeout(10)
        configuration.journalMode = exclusive ? .default : .wal
        configuration.prepareDatabase { db in
            if exclusive { try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE") }
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        return configuration
    }

    /// Moves every WAL frame into the database and truncates the WAL file, so that values removed
    /// by an erasure survive in no WAL frame and no stale page (SPEC 7.6).
    ///
    /// A reader holding an older snapshot (a backup, a report, another process mid-read) blocks it:
    /// SQLite must keep the old pages for that reader. Then the erasure, already committed, is not
    /// failed: the scrub is recorded as pending and finished by ``finishPendingScrub(_:)``, which the
    /// next sync, write or open calls, once the reader has let go. Returns whether the scrub is done.
    @discardableResult
    package static func checkpointTruncating(_ writer: any DatabaseWriter) -> Bool {
        do {
            try writer.writeWithoutTransaction { db in try checkpoint(db) }
            return true
        } catch {
            try? writer.writeWithoutTransaction { db in try markScrubPending(db) }
            return false
        }
    }

    /// Finishes a scrub an earlier erasure could not (see ``checkpointTruncating(_:)``); cheap when
    /// there is none. Returns whether none is pending afterwards.
    @discardableResult
    package static func finishPendingScrub(_ writer: any DatabaseWriter) -> Bool {
        guard isScrubPending(writer) else { return true }
        return checkpointTruncating(writer)
    }

    package static func isScrubPending(_ writer: any DatabaseWriter) -> Bool {
        (try? writer.read { db in try isScrubPending(db) }) ?? false
    }

    /// The same from async code, which must not block a cooperative thread on a connection (the
    /// server's request handlers, the sync engine).
    @discardableResult
    package static func finishPendingScrub(_ writer: any DatabaseWriter) async -> Bool {
        guard (try? await writer.read({ db in try isScrubPending(db) })) ?? false else { return true }
        return await checkpointTruncating(writer)
    }

    @discardableResult
    package static func checkpointTruncating(_ writer: any DatabaseWriter) async -> Bool {
        do {
            try await writer.writeWithoutTransaction { db in try checkpoint(db) }
            return true
        } catch {
            try? await writer.writeWithoutTransaction { db in try markScrubPending(db) }
            return false
        }
    }

    package static func isScrubPending(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM sync_meta WHERE key = ?", arguments: [scrubPendingKey]) ?? false
    }

    private static func checkpoint(_ db: Database) throws {
        // Wait a little for readers, not the full busy timeout: the erasure is committed already.
        try db.execute(sql: "PRAGMA busy_timeout = 2000")
        defer { try? db.execute(sql: "PRAGMA busy_timeout = 10000") }
        let (log, checkpointed) = try db.checkpoint(.truncate)
        guard log <= 0 || log == checkpointed else { throw DatabaseError(resultCode: .SQLITE_BUSY) }
        try db.execute(sql: "DELETE FROM sync_meta WHERE key = ?", arguments: [scrubPendingKey])
    }

    private static func markScrubPending(_ db: Database) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO sync_meta (key, value) VALUES (?, 1)", arguments: [scrubPendingKey])
    }

    static let scrubPendingKey = "wal_scrub_pending"

    /// Whether SQLite failed for want of space: the disk (or a quota, or `max_page_count`) is full.
    package static func isStorageFull(_ error: any Error) -> Bool {
        (error as? DatabaseError)?.resultCode == .SQLITE_FULL
    }

    /// Whether opening a file failed in a way a full disk causes: no room for its `-wal` or `-shm` file.
    package static func isOpenFailureOfFullDisk(_ error: any Error) -> Bool {
        guard let code = (error as? DatabaseError)?.resultCode else { return false }
        return code == .SQLITE_FULL || code == .SQLITE_IOERR
    }
}
