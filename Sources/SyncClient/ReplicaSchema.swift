import GRDB
import SyncCore
import SyncStorage

/// The terminal's file: schema v1's app tables, plus the outbox, the dead letters and the cursor.
enum ReplicaSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        SharedSchema.register(in: &migrator)
        migrator.registerMigration("v1-replica") { db in
            try db.execute(sql: """
                -- Local changes not yet acknowledged. col 0 is a row delete (value 1) or erase (value 2).
                CREATE TABLE sync_outbox (
                    counter INTEGER PRIMARY KEY AUTOINCREMENT,
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    col INTEGER NOT NULL,
                    value,
                    hlc INTEGER NOT NULL,
                    base_seq INTEGER NOT NULL
                );
                -- Changes the server refused, kept for a person to look at; they never block the outbox.
                CREATE TABLE sync_dead_letter (
                    counter INTEGER PRIMARY KEY,
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    col INTEGER NOT NULL,
                    value,
                    hlc INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    rejected_at TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v1-unknown-cells") { db in
            try db.execute(sql: """
                -- Pulled cells of columns this build does not know (a newer schema, SPEC 10): kept with
                -- their versions so that an upgrade can still deliver them.
                CREATE TABLE sync_unknown_cell (
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    col INTEGER NOT NULL,
                    value,
                    hlc INTEGER NOT NULL,
                    replica INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    PRIMARY KEY (tbl, row, col)
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }
}

/// Keys of `sync_meta` on a terminal.
enum MetaKey {
    static let replica = "replica"
    static let branch = "branch"
    static let role = "role"
    static let server = "server_url"
    static let token = "device_token"
    /// Set by `terminal rotate-token`: the next sync asks for a new token (SPEC 8.2).
    static let rotateToken = "rotate_token_requested"
    static let cursor = "cursor"
    static let lastHLC = "last_hlc"
    /// The highest clock reading the server has sent (an answer's `clock`), kept apart from `last_hlc`:
    /// a re-issue after a clock fix may bring the high-water mark down, never below this (SPEC 7.7).
    static let serverHLC = "server_hlc"
    static let lastSyncAt = "last_sync_at"
    /// The server store's epoch as last seen (SPEC 7.9).
    static let storeEpoch = "store_epoch"
    /// The highest `acknowledged` the server has told this replica: sent back as evidence (SPEC 7.9).
    static let acknowledged = "server_acknowledged"
    static let lastAttemptAt = "last_attempt_at"
    static let lastFailureAt = "last_failure_at"
    /// The failed attempt's error description: codes, hosts and counts, never patient data.
    static let lastFailure = "last_failure"
    static let daemonPID = "daemon_pid"
    static let daemonSeenAt = "daemon_seen_at"
    /// Which server certificates to trust (``ServerTrust``): the CA's PEM, the pinned key hash, and
    /// whether plain HTTP beyond loopback was allowed. Plain keys of `sync_meta`, so no migration: a
    /// file enrolled before they existed reads as the system store, HTTPS-only beyond loopback.
    static let serverCA = "server_ca_pem"
    static let serverPin = "server_pin_sha256"
    static let allowInsecureHTTP = "allow_insecure_http"
}

/// Cells of columns a newer schema added, as pulled (SPEC 10).
enum UnknownCells {
    /// Keeps a pulled cell of an unknown column if its version is the highest seen for that cell.
    static func keep(_ change: Change, value: Value, seq: UInt64, in db: Database) throws {
        guard let column = change.column else { return }
        let arguments: StatementArguments = [Int64(change.table.rawValue), change.row, Int64(column.rawValue)]
        if let stored = try Row.fetchOne(db, sql: "SELECT hlc, replica FROM sync_unknown_cell WHERE tbl = ? AND row = ? AND col = ?", arguments: arguments),
           Version(hlc: HLC(databaseValue: stored[0]), replica: ReplicaID(databaseValue: stored[1])) >= change.version
        {
            return
        }
        try db.execute(sql: "INSERT OR REPLACE INTO sync_unknown_cell (tbl, row, col, value, hlc, replica, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       arguments: arguments + [value, change.version.hlc.databaseValue, change.version.replica.databaseValue, Int64(seq)])
    }

    /// A deleted, erased or purged row keeps none (invariant 9 for erasures).
    static func remove(_ key: RowKey, in db: Database) throws {
        try db.execute(sql: "DELETE FROM sync_unknown_cell WHERE tbl = ? AND row = ?", arguments: [Int64(key.table.rawValue), key.row])
    }
}
