import GRDB

/// Schema v1 as SQL, shared by the server's store and the terminals' replicas.
///
/// App tables are plain SQLite tables any tool can read; sync metadata lives beside them in
/// `sync_*` tables. Shipped migrations are never edited: add new ones.
package enum SharedSchema {
    package static let v1 = """
        CREATE TABLE branch (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT, address TEXT, phone TEXT
        );
        CREATE TABLE content (
            id TEXT PRIMARY KEY NOT NULL,
            kind TEXT, slug TEXT, title TEXT, summary TEXT, body TEXT, tags TEXT,
            published INTEGER, position INTEGER, branch TEXT
        );
        CREATE INDEX content_slug ON content(slug);
        CREATE TABLE enquiry (
            id TEXT PRIMARY KEY NOT NULL,
            branch TEXT, created_at TEXT, name TEXT, phone TEXT, email TEXT, topic TEXT, message TEXT,
            preferred_contact TEXT, consent_to_contact INTEGER, status TEXT, assigned_to TEXT, follow_up_on TEXT
        );
        CREATE INDEX enquiry_branch ON enquiry(branch);
        CREATE TABLE enquiry_note (
            id TEXT PRIMARY KEY NOT NULL,
            enquiry TEXT, author TEXT, body TEXT, created_at TEXT
        );
        CREATE INDEX enquiry_note_enquiry ON enquiry_note(enquiry);
        CREATE TABLE sync_conflict (
            id TEXT PRIMARY KEY NOT NULL,
            table_name TEXT, row_id TEXT, column_name TEXT,
            winner_value, winner_replica TEXT, winner_hlc INTEGER,
            loser_value, loser_replica TEXT, loser_hlc INTEGER,
            branch TEXT, resolved INTEGER, detected_at TEXT
        );
        CREATE INDEX sync_conflict_row ON sync_conflict(row_id);

        -- The version of every cell (col > 0) and every row tombstone (col 0, value 1 delete / 2 erase).
        -- seq: the server's commit sequence of this version (terminals: the last one pulled; 0 if never).
        -- value: kept by the server, which serves pulls from here; terminals read the app tables.
        -- scope: the branch the row belongs to ('' for every branch); server only.
        CREATE TABLE sync_cell (
            tbl INTEGER NOT NULL,
            row TEXT NOT NULL,
            col INTEGER NOT NULL,
            value,
            hlc INTEGER NOT NULL,
            replica INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            scope TEXT,
            PRIMARY KEY (tbl, row, col)
        ) WITHOUT ROWID;

        CREATE TABLE sync_meta (
            key TEXT PRIMARY KEY NOT NULL,
            value
        ) WITHOUT ROWID;
        """

    /// Registers the shared migration under its shipped name.
    package static func register(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v1-shared") { db in
            try db.execute(sql: v1)
        }
    }
}

/// A key-value row of `sync_meta`, read and written inside the caller's transaction.
package enum SyncMeta {
    package static func get<T: DatabaseValueConvertible>(_ key: String, in db: Database) throws -> T? {
        try T.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = ?", arguments: [key])
    }

    package static func set(_ key: String, _ value: (any DatabaseValueConvertible)?, in db: Database) throws {
        try db.execute(
            sql: "INSERT INTO sync_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [key, value])
    }
}
