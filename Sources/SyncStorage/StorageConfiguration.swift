import GRDB

/// The SQLite settings both sides run with (invariant 6 and 9).
package enum StorageConfiguration {
    /// WAL, `synchronous=FULL` for acknowledged data, `secure_delete` so erased text leaves the file,
    /// foreign keys off (rows arrive in any order), and a busy timeout so an app, the CLI and the
    /// daemon can share one replica.
    package static func make(readonly: Bool = false) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.busyMode = .timeout(10)
        configuration.journalMode = .wal
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        return configuration
    }

    /// Moves every WAL frame into the database and truncates the WAL file, so that values removed
    /// by an erasure survive in no WAL frame.
    package static func checkpointTruncating(_ writer: any DatabaseWriter) throws {
        try writer.writeWithoutTransaction { db in
            _ = try db.checkpoint(.truncate)
        }
    }
}
