import Foundation
import GRDB
import SyncCore
import SyncStorage

/// The embedded default store: one SQLite file (WAL, `synchronous=FULL`) through GRDB.
///
/// Every invariant is kept inside one `write {}`: a push's changes, their seqs, conflict records and
/// the replica's counter commit together or not at all.
public struct SQLiteServerStore: ServerStore {
    let writer: any DatabaseWriter
    let clock: any WallClock
    /// Replica ids, device ids and enrollment codes are drawn from here (seeded in the simulator).
    let random: RandomSource
    /// Differs each time the store is opened (SPEC 7.9: a restore is trusted once per open).
    let openID: String
    /// The file as opened, to notice it deleted or replaced under the running server; nil in memory.
    let file: StoreFile?
    /// A full disk, once a write has met one; `/healthz` reports it until a write succeeds again.
    let condition = StoreCondition()
    /// Where committed erasures are also written, outside the store, for restores to replay; nil in memory.
    let ledger: ErasureLedger?
    /// The merge rule's one implementation; `package` so the simulator can switch on its test-only fault.
    package var applier = ChangeApplier(keepsValues: true, reSequencesDuplicates: false)
    /// Concurrent pushes share one write transaction and its fsync (group commit).
    let pushCommits = GroupCommit<(PushOutcome, Duration)>()

    /// The file name inside the data folder.
    public static let fileName = "server.sqlite"

    /// The store's file in a data folder.
    public static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent(fileName)
    }

    /// The data folder and store files (`-wal`, `-shm` too) that others than their owner may read,
    /// write or enter, with their modes: patient data, so `serve` warns about each at start.
    public static func looseFiles(in directory: String) -> [(path: String, mode: Int16)] {
        let path = path(in: directory)
        return PrivateFiles.looserThanOwnerOnly([directory, path, path + "-wal", path + "-shm"])
    }

    /// Opens `server.sqlite` in `directory`, migrating it if needed.
    ///
    /// With `creating` (the default) a missing folder and file are created owner-only (0700/0600; SQLite
    /// gives the `-wal` and `-shm` files the file's mode). Without it a missing store is an error
    /// (``StoreError/Code/noStore``), so that a mistyped folder is refused instead of answered from a
    /// new, empty store. A folder that held a store which is now gone (its `store-id` file or its `-wal`
    /// is there) and a store that cannot be written are refused either way (``StoreError/Code/storeUnavailable``),
    /// naming the file, before anything is created.
    public init(directory: String, creating: Bool = true, clock: any WallClock = SystemWallClock(), random: RandomSource = .system) throws {
        let path = Self.path(in: directory)
        try Self.checkFiles(in: directory, path: path)
        let marker = Self.markerPath(in: directory)
        let held = try? String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        if !FileManager.default.fileExists(atPath: path) {
            if let held {
                throw StoreError(.storeUnavailable, """
                    \(path) is missing, but this folder held store \(held) (see \(marker)): it was deleted or moved away, and a new, \
                    empty store would tell every terminal to enroll again. Put it back (or restore a backup and run \
                    `clinic-sync admin mark-restored --data \(directory)`); to start an empty store here on purpose, delete \(marker) first
                    """)
            }
            guard creating else {
                throw StoreError(.noStore, "no server store at \(path); check --data (or $CLINIC_SYNC_DATA), or create one with `clinic-sync admin branch add --data \(directory) …`")
            }
            try PrivateFiles.createDirectory(directory)
            try PrivateFiles.createFile(path)
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: StorageConfiguration.make())
        } catch let error as DatabaseError {
            // Name the file and say what SQLite found, never its message (it can quote values).
            let reason = error.resultCode == .SQLITE_FULL || error.resultCode == .SQLITE_IOERR
                ? "its disk may be full or failing (\(error.resultCode))" : "SQLite answered \(error.resultCode)"
            throw StoreError(.storeUnavailable, "cannot open the store \(path): \(reason)")
        }
        try self.init(writer: pool, file: StoreFile.current(at: path), ledger: ErasureLedger(directory: directory), clock: clock, random: random)
        let id = try writer.read { db in try Self.serverReplica(db).description }
        if let held, held != id {
            throw StoreError(.storeUnavailable, """
                \(path) is store \(id), but this folder held store \(held) (see \(marker)): another server's store was put here. \
                If that is intended, delete \(marker) and start again
                """)
        }
        // Written by the commands that set a store up (`serve` among them), so that others create nothing.
        if held == nil && creating {
            guard FileManager.default.createFile(atPath: marker, contents: Data((id + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw StoreError(.storeUnavailable, "cannot write \(marker); the data folder must be writable by the server's user")
            }
        }
    }

    /// The file in the data folder naming the store it holds, so that a store that disappears is noticed
    /// at the next start instead of being replaced by an empty one.
    public static func markerPath(in directory: String) -> String {
        (directory as NSString).appendingPathComponent(markerName)
    }

    /// The name of that file.
    public static let markerName = "store-id"

    /// Uses an open database (tests and the simulator pass an in-memory queue).
    public init(writer: any DatabaseWriter, clock: any WallClock = SystemWallClock(), random: RandomSource = .system) throws {
        try self.init(writer: writer, file: nil, ledger: nil, clock: clock, random: random)
    }

    private init(writer: any DatabaseWriter, file: StoreFile?, ledger: ErasureLedger?, clock: any WallClock, random: RandomSource) throws {
        self.writer = writer
        self.file = file
        self.ledger = ledger
        self.clock = clock
        self.random = random
        var generator = random
        openID = Self.newEpoch(using: &generator)
        try Self.migrator.migrate(writer)
        try writer.write { db in
            var generator = random
            if try SyncMeta.get("server_replica", in: db) as Int64? == nil {
                try SyncMeta.set("server_replica", ReplicaID.random(using: &generator).databaseValue, in: db)
            }
            if try SyncMeta.get(Self.epochKey, in: db) as String? == nil {
                try SyncMeta.set(Self.epochKey, Self.newEpoch(using: &generator), in: db)
            }
        }
    }

    /// The database, for tools that work on the file itself: the benchmark measures it, the simulator backs it up and stops it.
    package var writerForTools: any DatabaseWriter { writer }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        SharedSchema.register(in: &migrator)
        migrator.registerMigration("v1-server") { db in
            try db.execute(sql: """
                CREATE UNIQUE INDEX sync_cell_seq ON sync_cell(seq);
                -- Rows that left a branch (an enquiry moved): that branch's terminals purge them.
                CREATE TABLE sync_exit (
                    seq INTEGER PRIMARY KEY,
                    tbl INTEGER NOT NULL,
                    row TEXT NOT NULL,
                    branch TEXT NOT NULL
                );
                CREATE INDEX sync_exit_branch ON sync_exit(branch, seq);
                -- Refused pushed changes, kept until the replica's pushes move past them.
                CREATE TABLE sync_rejection (
                    replica INTEGER NOT NULL,
                    counter INTEGER NOT NULL,
                    reason INTEGER NOT NULL,
                    PRIMARY KEY (replica, counter)
                ) WITHOUT ROWID;
                CREATE TABLE device (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL,
                    branch TEXT NOT NULL,
                    role TEXT NOT NULL,
                    replica INTEGER UNIQUE,
                    token_hash TEXT UNIQUE,
                    created_at REAL NOT NULL,
                    enrolled_at REAL,
                    revoked_at REAL,
                    last_seen_at REAL,
                    acknowledged INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE enrollment_code (
                    code_hash TEXT PRIMARY KEY NOT NULL,
                    device_id TEXT NOT NULL REFERENCES device(id),
                    expires_at REAL NOT NULL,
                    used_at REAL
                );
                """)
        }
        migrator.registerMigration("v2-replica-rollback") { db in
            try db.execute(sql: """
                -- Every replica id ever handed out, so a new one is never a reused one, and a device's
                -- former replica (before a restore of its file was detected) is recognised. Kept when the device
                -- is removed (no foreign key): its ids stay taken.
                CREATE TABLE device_replica (
                    replica INTEGER PRIMARY KEY NOT NULL,
                    device TEXT NOT NULL,
                    superseded_at REAL
                );
                INSERT INTO device_replica (replica, device) SELECT replica, id FROM device WHERE replica IS NOT NULL;
                -- The counters and fingerprints of a replica's recent pushes (SPEC 7.8), one row a push,
                -- 16 bytes a change: a replayed counter must say what it said the first time.
                CREATE TABLE sync_push_log (
                    replica INTEGER NOT NULL,
                    last_counter INTEGER NOT NULL,
                    fingerprints BLOB NOT NULL,
                    PRIMARY KEY (replica, last_counter)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v3-device-operations") { db in
            try db.execute(sql: """
                -- admin device move: the branch the device goes to at its next sync with nothing to push.
                ALTER TABLE device ADD COLUMN moving_to TEXT;
                -- What the terminal said in its last sync, for admin device list.
                ALTER TABLE device ADD COLUMN pending INTEGER;
                ALTER TABLE device ADD COLUMN app_version TEXT;
                -- Who did what, when: enrollments, revocations, moves, erasures, restores, pushes by
                -- device. Ids, counts and codes only, never patient text (the detail is JSON of those).
                CREATE TABLE audit_event (
                    id INTEGER PRIMARY KEY,
                    at REAL NOT NULL,
                    kind TEXT NOT NULL,
                    device TEXT,
                    branch TEXT,
                    detail TEXT NOT NULL DEFAULT '{}'
                );
                CREATE INDEX audit_event_at ON audit_event(at);
                """)
        }
        migrator.registerMigration("v4-token-rotation") { db in
            try db.execute(sql: """
                -- Tokens sync answers gave a device; its token until then stays valid, and the first of
                -- these it uses replaces it (SPEC 8.2). Several: an answer may be lost, or a late copy of
                -- an old request may fetch another, and a token the device kept must still work.
                CREATE TABLE device_next_token (
                    token_hash TEXT PRIMARY KEY NOT NULL,
                    device TEXT NOT NULL,
                    issued_at REAL NOT NULL
                );
                CREATE INDEX device_next_token_device ON device_next_token(device, issued_at);
                -- admin device rotate-token: sync answers carry a new token until the device uses one.
                ALTER TABLE device ADD COLUMN rotate_requested INTEGER NOT NULL DEFAULT 0;
                """)
        }
        migrator.registerMigration("v5-last-contact") { db in
            // Any request with the device's token, refused ones too: "talks to us but fails" at a glance.
            try db.execute(sql: "ALTER TABLE device ADD COLUMN last_contact_at REAL")
        }
        migrator.registerMigration("v6-pull-by-scope") { db in
            // A pull reads its branch's cells and everyone's, each in seq order, without walking the
            // other branches' cells in between (issue 12: quiet branches' pulls scanned the whole log).
            try db.execute(sql: "CREATE INDEX sync_cell_scope_seq ON sync_cell(scope, seq)")
        }
        return migrator
    }

    public func serverID() async throws -> String {
        try await writer.read { db in try Self.serverReplica(db).description }
    }

    // MARK: Devices

    public func device(tokenHash: String) async throws -> Device? {
        let found = try await writer.read { db -> (Device, isNext: Bool)? in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM device WHERE token_hash = ?", arguments: [tokenHash]) {
                return (Self.device(from: row), false)
            }
            return try Row.fetchOne(db, sql: """
                SELECT d.* FROM device_next_token n JOIN device d ON d.id = n.device WHERE n.token_hash = ?
                """, arguments: [tokenHash]).map { (Self.device(from: $0), true) }
        }
        guard let (device, isNext) = found else { return nil }
        guard isNext else { return device }
        // The device holds a new token: it becomes the token, and the old one and every other stops working.
        let (id, branch) = (device.id, device.branch)
        return try await guarded {
            try await writer.write { [now] db in
                try db.execute(sql: "DELETE FROM device_next_token WHERE device = ? AND token_hash = ?", arguments: [id, tokenHash])
                guard db.changesCount > 0 else {
                    return try Row.fetchOne(db, sql: "SELECT * FROM device WHERE token_hash = ?", arguments: [tokenHash]).map(Self.device(from:))
                }
                try db.execute(sql: "UPDATE device SET token_hash = ?, rotate_requested = 0 WHERE id = ?", arguments: [tokenHash, id])
                try db.execute(sql: "DELETE FROM device_next_token WHERE device = ?", arguments: [id])
                try Self.audit("token_rotated", device: id, branch: branch, at: now, db: db)
                return try Row.fetchOne(db, sql: "SELECT * FROM device WHERE id = ?", arguments: [id]).map(Self.device(from:))
            }
        }
    }

    public func noteContact(_ device: Device) async {
        let now = self.now
        guard (device.lastContactAt?.timeIntervalSince1970 ?? 0) < now - Self.lastSeenInterval else { return }
        // Bookkeeping: a full disk or a busy store must not fail the request it describes.
        try? await writer.write { db in
            try db.execute(sql: "UPDATE device SET last_contact_at = ? WHERE id = ?", arguments: [now, device.id])
        }
    }

    public func setNextToken(deviceID: String, tokenHash: String) async throws {
        try await guarded {
            try await writer.write { [now] db in
                try db.execute(sql: "INSERT INTO device_next_token (token_hash, device, issued_at) VALUES (?, ?, ?)", arguments: [tokenHash, deviceID, now])
                // A few answers may be lost in a row; beyond that the oldest are dropped.
                try db.execute(sql: """
                    DELETE FROM device_next_token WHERE device = ? AND token_hash NOT IN
                        (SELECT token_hash FROM device_next_token WHERE device = ? ORDER BY issued_at DESC, rowid DESC LIMIT 8)
                    """, arguments: [deviceID, deviceID])
            }
        }
    }

    public func enroll(codeHash: String, deviceName: String, tokenHash: String) async throws -> (Device, HLC) {
        try await guarded {
            let now = Date(timeIntervalSince1970: Double(clock.milliseconds()) / 1000)
            return try await writer.write { db in
                guard let code = try Row.fetchOne(db, sql: "SELECT * FROM enrollment_code WHERE code_hash = ?", arguments: [codeHash]),
                      code["used_at"] as Double? == nil,
                      (code["expires_at"] as Double) > now.timeIntervalSince1970,
                      let row = try Row.fetchOne(db, sql: "SELECT * FROM device WHERE id = ? AND revoked_at IS NULL", arguments: [code["device_id"] as String])
                else {
                    // One answer for unknown, used and expired codes, so codes cannot be probed.
                    throw StoreError(.invalidEnrollmentCode, "the enrollment code is unknown, used or expired")
                }
                var device = Self.device(from: row)
                var generator = random
                var replica = ReplicaID.random(using: &generator)
                while try Self.isReplicaTaken(replica, db) {
                    replica = ReplicaID.random(using: &generator)
                }
                let name = deviceName.isEmpty ? device.name : deviceName
                try db.execute(
                    sql: "UPDATE device SET name = ?, replica = ?, token_hash = ?, enrolled_at = ?, acknowledged = 0 WHERE id = ?",
                    arguments: [name, replica.databaseValue, tokenHash, now.timeIntervalSince1970, device.id])
                try db.execute(sql: "DELETE FROM device_next_token WHERE device = ?", arguments: [device.id])
                try db.execute(sql: "INSERT INTO device_replica (replica, device) VALUES (?, ?)", arguments: [replica.databaseValue, device.id])
                try db.execute(sql: "UPDATE enrollment_code SET used_at = ? WHERE code_hash = ?", arguments: [now.timeIntervalSince1970, codeHash])
                try Self.audit("device_enrolled", device: device.id, branch: device.branch, detail: ["replica": replica.description, "role": device.role.name],
                               at: now.timeIntervalSince1970, db: db)
                device.name = name
                device.replica = replica
                device.enrolledAt = now
                var hlc = try Self.hybridClock(db)
                let reading = hlc.tick(wall: clock.milliseconds())
                try SyncMeta.set("last_hlc", reading.databaseValue, in: db)
                return (device, reading)
            }
        }
    }

    public func addDevice(branch: String, name: String, role: DeviceRole, codeHash: String, codeExpiresAt: Date) async throws -> Device {
        try await guarded {
            let now = Date(timeIntervalSince1970: Double(clock.milliseconds()) / 1000)
            return try await writer.write { db in
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM branch WHERE id = ?", arguments: [branch]) != nil else {
                    throw StoreError(.unknownBranch, "no branch '\(branch)'; add it with `clinic-sync admin branch add`")
                }
                var generator = random
                let device = Device(
                    id: generator.uuidString(), name: name, branch: branch, role: role, replica: nil,
                    createdAt: now, acknowledged: 0)
                try db.execute(
                    sql: "INSERT INTO device (id, name, branch, role, created_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [device.id, name, branch, role.name, now.timeIntervalSince1970])
                try db.execute(
                    sql: "INSERT INTO enrollment_code (code_hash, device_id, expires_at) VALUES (?, ?, ?)",
                    arguments: [codeHash, device.id, codeExpiresAt.timeIntervalSince1970])
                return device
            }
        }
    }

    /// Creates a device at `branch` and returns it with its one-time enrollment code.
    public func issueEnrollmentCode(branch: String, name: String, role: DeviceRole, lifetime: Double = SyncLimits().enrollmentCodeLifetime) async throws -> (Device, String) {
        var generator = random
        let code = Credentials.makeEnrollmentCode(using: &generator)
        let expires = Date(timeIntervalSince1970: Double(clock.milliseconds()) / 1000 + lifetime)
        let device = try await addDevice(branch: branch, name: name, role: role, codeHash: Credentials.hash(Credentials.normalizedCode(code)), codeExpiresAt: expires)
        return (device, code)
    }

    /// The branches, by id.
    public func branches() throws -> [BranchInfo] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM branch ORDER BY id").map {
                BranchInfo(id: $0["id"], name: $0["name"] ?? "", address: $0["address"], phone: $0["phone"])
            }
        }
    }

    public func devices() async throws -> [Device] {
        try await writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM device ORDER BY branch, created_at").map(Self.device(from:))
        }
    }

    public func revokeDevice(id: String) async throws -> Device {
        try await guarded {
            let now = Double(clock.milliseconds()) / 1000
            return try await writer.write { db in
                try db.execute(sql: "UPDATE device SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", arguments: [now, id])
                let revokedNow = db.changesCount > 0
                try db.execute(sql: "DELETE FROM device_next_token WHERE device = ?", arguments: [id])
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM device WHERE id = ?", arguments: [id]) else {
                    throw StoreError(.unknownDevice, "no device '\(id)'")
                }
                if revokedNow { try Self.audit("device_revoked", device: id, branch: row["branch"], at: now, db: db) }
                return Self.device(from: row)
            }
        }
    }

    /// Deletes a revoked (or never enrolled) device and its enrollment codes. An active device must
    /// be revoked first, so removal never cuts off a terminal by surprise. The changes it pushed stay.
    public func removeDevice(id: String) async throws -> Device {
        try await guarded {
            try await writer.write { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM device WHERE id = ?", arguments: [id]) else {
                    throw StoreError(.unknownDevice, "no device '\(id)'")
                }
                let device = Self.device(from: row)
                guard device.isRevoked || device.enrolledAt == nil else {
                    throw StoreError(.invalidWrite, "device \(id) is enrolled; revoke it first with `clinic-sync admin device revoke \(id)`")
                }
                try db.execute(sql: "DELETE FROM enrollment_code WHERE device_id = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM device_next_token WHERE device = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM device WHERE id = ?", arguments: [id])
                try Self.audit("device_removed", device: id, branch: device.branch, at: now, db: db)
                return device
            }
        }
    }

    static func device(from row: Row) -> Device {
        Device(
            id: row["id"], name: row["name"], branch: row["branch"],
            role: DeviceRole(name: row["role"]) ?? .terminal,
            replica: (row["replica"] as Int64?).map(ReplicaID.init(databaseValue:)),
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            enrolledAt: (row["enrolled_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
            revokedAt: (row["revoked_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
            lastSeenAt: (row["last_seen_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
            acknowledged: UInt64(row["acknowledged"] as Int64),
            movingTo: row["moving_to"], pending: row["pending"], appVersion: row["app_version"],
            rotateRequested: (row["rotate_requested"] as Int64? ?? 0) != 0,
            lastContactAt: (row["last_contact_at"] as Double?).map(Date.init(timeIntervalSince1970:)))
    }

    // MARK: Server-authored writes

    public func saveBranch(id: String, name: String, address: String?, phone: String?) async throws {
        try await write([
            CellWrite(.branch, id, Columns.Branch.name, .text(name)),
            CellWrite(.branch, id, Columns.Branch.address, address.value),
            CellWrite(.branch, id, Columns.Branch.phone, phone.value),
        ])
    }

    public func write(_ cells: [CellWrite]) async throws {
        try await guarded {
            for cell in cells {
                if let problem = cell.table.definition.problem(writing: cell.value, to: cell.column) {
                    throw StoreError(.invalidWrite, problem)
                }
            }
            try await writer.write { db in
                var session = try WriteSession(db: db, store: self)
                let hlc = session.tick()
                let changes = cells.map {
                    Change(table: $0.table, row: $0.row, operation: .write(column: $0.column, value: $0.value, baseSeq: 0),
                           version: Version(hlc: hlc, replica: session.serverReplica))
                }
                let pending = PendingRows(changes)
                try session.apply(try changes.map { change in
                    guard let scope = try session.scope(of: RowKey(change.table, change.row), pending: pending) else {
                        throw StoreError(.invalidWrite, "\(change.table.name) rows need a branch (and notes an existing enquiry)")
                    }
                    return (change, scope)
                })
                try session.finish()
            }
        }
    }

    public func erase(_ table: TableID, row: String) async throws {
        _ = try await erase(table, row: row, requireHeld: false)
    }

    /// What an erasure of a row the store must hold found.
    public enum Erasure: Sendable, Equatable {
        /// The row's values were removed now.
        case erased
        /// Only the tombstone of an earlier erasure was there; nothing changed.
        case alreadyErased
    }

    /// Erases a row this store holds; a row it has never held is an error (``StoreError/Code/notFound``),
    /// so a mistyped id is never reported as erased. Checked and erased in one transaction.
    public func eraseHeld(_ table: TableID, row: String) async throws -> Erasure {
        try await erase(table, row: row, requireHeld: true)
    }

    private func erase(_ table: TableID, row: String, requireHeld: Bool) async throws -> Erasure {
        try await guarded {
            let (erasure, erased) = try await writer.write { db -> (Erasure, [ErasureLedger.Entry]) in
                if requireHeld {
                    let tombstone = try Int64.fetchOne(
                        db, sql: "SELECT value FROM sync_cell WHERE tbl = ? AND row = ? AND col = 0", arguments: [Int64(table.rawValue), row])
                    if tombstone == Self.erasedTombstone { return (.alreadyErased, []) }
                    guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sync_cell WHERE tbl = ? AND row = ? LIMIT 1", arguments: [Int64(table.rawValue), row]) != nil else {
                        throw StoreError(.notFound, "no \(table.name) \(row) on this server; nothing was erased")
                    }
                }
                var session = try WriteSession(db: db, store: self)
                let change = Change(table: table, row: row, operation: .erase, version: Version(hlc: session.tick(), replica: session.serverReplica))
                try session.apply([(change, nil)])
                try session.finish()
                return (.erased, session.erased)
            }
            appendToLedger(erased)
            if erasure == .erased { await StorageConfiguration.checkpointTruncating(writer) }
            return erasure
        }
    }

    /// `sync_cell.value` of a row's erasure tombstone (col 0; a plain delete is 1).
    static let erasedTombstone: Int64 = 2

    public func conflicts(includeResolved: Bool) async throws -> [ConflictRecord] {
        try await writer.read { db in
            // Conflicts name replicas; operators know devices. Every replica id a device ever had maps to it.
            var names = [try Self.serverReplica(db).description: "server"]
            for row in try Row.fetchAll(db, sql: "SELECT r.replica, d.name FROM device_replica r JOIN device d ON d.id = r.device") {
                names[ReplicaID(databaseValue: row[0] as Int64).description] = row[1]
            }
            return try Row.fetchAll(db, sql: """
                SELECT * FROM sync_conflict \(includeResolved ? "" : "WHERE resolved = 0") ORDER BY detected_at
                """).map { row in
                ConflictRecord(
                    id: row["id"], table: row["table_name"], row: row["row_id"], column: row["column_name"],
                    winnerReplica: row["winner_replica"], loserReplica: row["loser_replica"],
                    winnerDevice: names[row["winner_replica"] ?? ""], loserDevice: names[row["loser_replica"] ?? ""], branch: row["branch"] ?? "",
                    resolved: row["resolved"] == 1, detectedAt: row["detected_at"] ?? "")
            }
        }
    }

    /// Whether `replica` is, or ever was, some device's or the server's.
    static func isReplicaTaken(_ replica: ReplicaID, _ db: Database) throws -> Bool {
        try replica.rawValue == 0 || replica == serverReplica(db)
            || Bool.fetchOne(db, sql: "SELECT 1 FROM device_replica WHERE replica = ?", arguments: [replica.databaseValue]) != nil
            || Bool.fetchOne(db, sql: "SELECT 1 FROM device WHERE replica = ?", arguments: [replica.databaseValue]) != nil
    }

    static let epochKey = "store_epoch"
    /// The last seq when the store was last found restored: re-sent versions are judged against what came after (SPEC 7.9).
    static let restoredAtSeqKey = "restored_at_seq"

    static func newEpoch(using generator: inout RandomSource) -> String {
        ReplicaID(generator.next()).description
    }

    /// The store's epoch (SPEC 7.9): changes whenever the store is found restored from an older copy.
    public func epoch() async throws -> String {
        try await writer.read { db in try SyncMeta.get(Self.epochKey, in: db) ?? "" }
    }

    public func markRestored() async throws -> String {
        try await guarded {
            try await writer.write { db in try markRestored(db, how: "operator") }
        }
    }

    /// `how`: `operator` (mark-restored, admin restore) or the proof a terminal brought.
    func markRestored(_ db: Database, how: String) throws -> String {
        var generator = random
        let epoch = Self.newEpoch(using: &generator)
        try Self.audit("store_restored", detail: ["how": how, "epoch": epoch, "last_seq": String(try SyncMeta.get("last_seq", in: db) ?? Int64(0))], at: now, db: db)
        try SyncMeta.set(Self.epochKey, epoch, in: db)
        try SyncMeta.set(Self.restoredAtSeqKey, try SyncMeta.get("last_seq", in: db) ?? Int64(0), in: db)
        return epoch
    }

    public func statistics(staleAfter: TimeInterval) async throws -> StoreStatistics {
        let now = Date(timeIntervalSince1970: Double(clock.milliseconds()) / 1000)
        return try await writer.read { db in
            var statistics = StoreStatistics()
            let since = "coalesce(last_seen_at, enrolled_at)"
            let active = "enrolled_at IS NOT NULL AND revoked_at IS NULL"
            let devices = try Row.fetchOne(db, sql: """
                SELECT count(*) AS active, coalesce(sum(\(since) < ?), 0) AS stale, min(\(since)) AS oldest FROM device WHERE \(active)
                """, arguments: [now.timeIntervalSince1970 - staleAfter])
            statistics.activeDevices = devices?["active"] ?? 0
            statistics.staleDevices = devices?["stale"] ?? 0
            statistics.oldestSyncAge = (devices?["oldest"] as Double?).map { max(0, now.timeIntervalSince1970 - $0) } ?? 0
            statistics.openConflicts = try Int.fetchOne(db, sql: "SELECT count(*) FROM sync_conflict WHERE resolved = 0") ?? 0
            for row in try Row.fetchAll(db, sql: "SELECT reason, count(*) AS n FROM sync_rejection GROUP BY reason") {
                let name = RejectionReason(rawValue: UInt8(truncatingIfNeeded: row["reason"] as Int64))?.name ?? "unknown"
                statistics.rejectionsByReason[name, default: 0] += row["n"] as Int
            }
            return statistics
        }
    }

    static func serverReplica(_ db: Database) throws -> ReplicaID {
        ReplicaID(databaseValue: try SyncMeta.get("server_replica", in: db) ?? 0)
    }

    static func hybridClock(_ db: Database) throws -> HybridLogicalClock {
        HybridLogicalClock(last: HLC(databaseValue: try SyncMeta.get("last_hlc", in: db) ?? 0))
    }
}
