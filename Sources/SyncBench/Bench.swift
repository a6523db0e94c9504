import CSQLiteSession
import Foundation
import GRDB
import Logging
import SyncClient
import SyncCore
import SyncServer
import SyncStorage

/// `clinic-sync bench`: every figure beside a baseline measured in the same run (issue 7).
public struct Bench: Sendable {
    public var configuration: BenchConfiguration
    var say: @Sendable (String) -> Void

    public init(configuration: BenchConfiguration, say: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.say = say
    }

    static let branch = "harley-street"
    static var quietLogger: Logger {
        var logger = Logger(label: "clinic-sync.bench")
        logger.logLevel = .critical
        return logger
    }

    public func run() async throws -> BenchReport {
        try Self.prepare(configuration.directory)
        var rows: [BenchRow] = []
        var figures: [String: Double] = [:]
        let sections = configuration.sections
        if sections.contains(1) {
            say("1/6 local write overhead (\(configuration.localWrites) enquiries)")
            rows += try localWrites()
        }
        if sections.contains(2) {
            say("2/6 apply throughput (\(configuration.applyRows) enquiries)")
            rows += try applyThroughput()
        }
        if sections.contains(3) {
            say("3/6 bytes on the wire per changed cell (\(configuration.wireRows) rows)")
            rows += try wireBytes()
        }
        if sections.contains(4) || sections.contains(6) {
            say("4/6 bootstrap of \(configuration.bootstrapRows) enquiries over HTTP, and 6/6 the daemon")
            let (bootstrapRows, bootstrapFigures) = try await bootstrapAndDaemon()
            rows += bootstrapRows
            figures.merge(bootstrapFigures) { $1 }
        }
        if sections.contains(5) {
            say("5/6 server under load (\(configuration.loadTerminals) terminals)")
            let (loadRows, loadFigures) = try await load()
            rows += loadRows
            figures.merge(loadFigures) { $1 }
        }
        return BenchReport(
            date: ISO8601DateFormatter().string(from: Date()), machine: Self.machine(), quick: configuration.quick,
            sizes: [
                "local_writes": configuration.localWrites, "apply_rows": configuration.applyRows, "wire_rows": configuration.wireRows,
                "bootstrap_rows": configuration.bootstrapRows, "load_terminals": configuration.loadTerminals,
            ],
            rows: rows, figures: figures)
    }

    // MARK: Helpers

    /// The file that marks a folder as the benchmark's own, so that only such a folder is ever wiped.
    static let markerName = ".clinic-sync-bench"

    /// Empties the work folder, refusing any folder that holds files and is not the benchmark's own:
    /// `--dir` pointed at a data folder by mistake must not delete a clinic's store.
    static func prepare(_ directory: String) throws {
        let files = FileManager.default
        if let contents = try? files.contentsOfDirectory(atPath: directory), !contents.isEmpty {
            guard contents.contains(markerName) else {
                throw BenchError("\(directory) holds files and is not a benchmark folder (no \(markerName) in it); nothing was deleted. Choose an empty or new --dir")
            }
            try files.removeItem(atPath: directory)
        }
        try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard files.createFile(atPath: (directory as NSString).appendingPathComponent(markerName), contents: Data()) else {
            throw BenchError("cannot write in \(directory)")
        }
    }

    func path(_ name: String) -> String { configuration.directory + "/" + name }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start).seconds
    }

    static func time(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        return (ContinuousClock.now - start).seconds
    }

    /// A plain SQLite file with schema v1's tables and the same pragmas as a replica.
    func plainDatabase(_ name: String) throws -> DatabaseQueue {
        let queue = try DatabaseQueue(path: path(name), configuration: StorageConfiguration.make())
        var migrator = DatabaseMigrator()
        SharedSchema.register(in: &migrator)
        try migrator.migrate(queue)
        return queue
    }

    /// A replica with an identity but no server, for local measurements.
    func offlineReplica(_ name: String) throws -> Replica {
        let replica = try Replica.open(at: path(name))
        try replica.assumeIdentity(ReplicaIdentity(replica: ReplicaID(0xBE7C), branch: Self.branch, role: .terminal, server: "http://127.0.0.1:9"), token: "none")
        return replica
    }

    static let enquiryColumns = ["branch", "created_at", "name", "phone", "email", "topic", "message", "preferred_contact", "consent_to_contact", "status"]

    static func rowValues(_ row: (id: String, cells: [CellWrite])) -> [Value] {
        row.cells.map(\.value)
    }

    static func insertSQL(upsert: Bool) -> String {
        let columns = enquiryColumns
        var sql = "INSERT INTO enquiry (id, \(columns.joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: columns.count)))"
        if upsert { sql += " ON CONFLICT(id) DO UPDATE SET " + columns.map { "\($0) = excluded.\($0)" }.joined(separator: ", ") }
        return sql
    }

    static func machine() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        let memory = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?
            .split(separator: "\n").first?.split(separator: " ").dropFirst().first.flatMap { Double($0) }.map { String(format: "%.0f GiB", $0 / 1_048_576) } ?? "?"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), \(memory) RAM, \(ProcessInfo.processInfo.operatingSystemVersionString)"
    }

    // MARK: 1. Local write overhead

    func localWrites() throws -> [BenchRow] {
        let rows = SyntheticEnquiries.generate(count: configuration.localWrites, seed: 1, branches: [Self.branch])
        let plain = try plainDatabase("plain-writes.sqlite")
        let baseline = try Self.time {
            try plain.write { db in
                let statement = try db.makeStatement(sql: Self.insertSQL(upsert: false))
                for row in rows { try statement.execute(arguments: StatementArguments([row.id] + Self.rowValues(row).map(\.databaseValue))) }
            }
        }
        let replica = try offlineReplica("replica-writes.sqlite")
        let enquiries = rows.map { row -> NewEnquiry in
            let cells = Dictionary(uniqueKeysWithValues: row.cells.map { ($0.column, $0.value) })
            return NewEnquiry(name: cells[Columns.Enquiry.name]?.text ?? "", phone: cells[Columns.Enquiry.phone]?.text, email: cells[Columns.Enquiry.email]?.text,
                              topic: cells[Columns.Enquiry.topic]?.text, message: cells[Columns.Enquiry.message]?.text,
                              preferredContact: cells[Columns.Enquiry.preferredContact]?.text, consentToContact: true)
        }
        let measured = try Self.time { try replica.enquiries.add(contentsOf: enquiries, ids: rows.map(\.id)) }
        let perRow = { (seconds: Double) in seconds / Double(rows.count) * 1e6 }
        return [BenchRow(
            benchmark: "1 local writes", measure: "\(rows.count) enquiries in one transaction, per enquiry", value: perRow(measured), unit: "µs",
            baselineName: "plain prepared INSERTs", baseline: perRow(baseline), ratio: measured / baseline, goal: "≤ 1.5×",
            met: measured / baseline <= 1.5)]
    }

    // MARK: 2. Apply throughput

    func applyThroughput() throws -> [BenchRow] {
        let rows = SyntheticEnquiries.generate(count: configuration.applyRows, seed: 2, branches: [Self.branch])
        let author = ReplicaID(0xA11CE)
        var seq: UInt64 = 0
        var pulled: [PulledChange] = []
        for (index, row) in rows.enumerated() {
            let version = Version(hlc: HLC(milliseconds: 1_764_000_000_000 + UInt64(index), counter: 0), replica: author)
            for cell in row.cells {
                seq += 1
                pulled.append(PulledChange(seq: seq, change: Change(table: .enquiry, row: row.id, operation: .write(column: cell.column, value: cell.value, baseSeq: 0), version: version)))
            }
        }
        let pageSize = 10_000
        let pages = stride(from: 0, to: pulled.count, by: pageSize).map { start -> SyncResponse in
            let page = Array(pulled[start..<min(start + pageSize, pulled.count)])
            return SyncResponse(clock: page.last!.change.version.hlc, acknowledged: 0, changes: page, cursor: page.last!.seq, more: start + pageSize < pulled.count)
        }
        let replica = try offlineReplica("replica-apply.sqlite")
        let engine = SyncEngine(replica: replica, transport: UnreachableTransport(), logger: Self.quietLogger)
        let measured = try Self.time { for page in pages { _ = try engine.apply(page, pushed: []) } }
        let plain = try plainDatabase("plain-apply.sqlite")
        let baseline = try Self.time {
            try plain.write { db in
                let statement = try db.makeStatement(sql: Self.insertSQL(upsert: true))
                for row in rows { try statement.execute(arguments: StatementArguments([row.id] + Self.rowValues(row).map(\.databaseValue))) }
            }
        }
        let cells = Double(pulled.count)
        return [BenchRow(
            benchmark: "2 apply", measure: "pulled cells applied (\(pages.count) pages of \(pageSize))", value: cells / measured, unit: "cells/s",
            baselineName: "plain upserts, one transaction", baseline: cells / baseline, ratio: baseline / measured, goal: "≥ 0.5×",
            met: baseline / measured >= 0.5)]
    }

    // MARK: 3. Bytes on the wire per changed cell

    func wireBytes() throws -> [BenchRow] {
        let rows = SyntheticEnquiries.generate(count: configuration.wireRows, seed: 3, branches: [Self.branch])
        let author = ReplicaID(0x7E57_0000_0000_00A1)
        let base = HLC(milliseconds: 1_764_000_000_000, counter: 0)
        // (a) new enquiries: every cell of every row, one local transaction per enquiry.
        var counter: UInt64 = 0
        var inserts: [PushedChange] = []
        for (index, row) in rows.enumerated() {
            let version = Version(hlc: HLC(milliseconds: base.milliseconds + UInt64(index) * 1_537, counter: 0), replica: author)
            for cell in row.cells {
                counter += 1
                inserts.append(PushedChange(counter: counter, change: Change(table: .enquiry, row: row.id, operation: .write(column: cell.column, value: cell.value, baseSeq: 0), version: version)))
            }
        }
        // (b) one status change per enquiry, each having seen an earlier server seq.
        let statuses = Schema.enquiryStatuses
        let updates = rows.enumerated().map { index, row -> PushedChange in
            counter += 1
            let version = Version(hlc: HLC(milliseconds: base.milliseconds + 86_400_000 + UInt64(index) * 2_311, counter: 0), replica: author)
            return PushedChange(counter: counter, change: Change(
                table: .enquiry, row: row.id, operation: .write(column: Columns.Enquiry.status, value: .text(statuses[(index + 1) % statuses.count]),
                                                                baseSeq: UInt64(index) * 10 + 10),
                version: version))
        }
        func framed(_ changes: [PushedChange], batch: Int) -> Int {
            stride(from: 0, to: changes.count, by: batch).map { start in
                Deflate.compress(FrameCodec.encode(SyncRequest(replica: author, clock: base, cursor: 0, changes: Array(changes[start..<min(start + batch, changes.count)])))).count
            }.reduce(0, +)
        }
        let (sessionInsert, sessionUpdate) = try sessionChangesets(rows, statuses: statuses)
        let jsonInsert = Deflate.compress(Self.couchDocuments(rows, revision: 1, status: nil)).count
        let jsonUpdate = Deflate.compress(Self.couchDocuments(rows, revision: 2, status: { statuses[($0 + 1) % statuses.count] })).count

        let insertCells = Double(inserts.count), updateCells = Double(updates.count)
        let insertWhole = Double(framed(inserts, batch: inserts.count)) / insertCells
        let insertBatched = Double(framed(inserts, batch: 500)) / insertCells
        let updateWhole = Double(framed(updates, batch: updates.count)) / updateCells
        let updateBatched = Double(framed(updates, batch: 500)) / updateCells
        let sessionInsertPerCell = Double(sessionInsert) / insertCells, sessionUpdatePerCell = Double(sessionUpdate) / updateCells
        return [
            BenchRow(benchmark: "3a new rows", measure: "\(rows.count) new enquiries, one frame, deflated", value: insertWhole, unit: "B/cell",
                     baselineName: "session changeset, deflated", baseline: sessionInsertPerCell, ratio: insertWhole / sessionInsertPerCell, goal: "≤ 1.0×",
                     met: insertWhole <= sessionInsertPerCell),
            BenchRow(benchmark: "3a new rows", measure: "same, as pushed (500-change frames)", value: insertBatched, unit: "B/cell",
                     baselineName: "session changeset, deflated", baseline: sessionInsertPerCell, ratio: insertBatched / sessionInsertPerCell, goal: "–", met: nil),
            BenchRow(benchmark: "3a new rows", measure: "\(rows.count) new enquiries, one frame, deflated", value: insertWhole, unit: "B/cell",
                     baselineName: "JSON doc per row, deflated", baseline: Double(jsonInsert) / insertCells, ratio: insertWhole / (Double(jsonInsert) / insertCells),
                     goal: "–", met: nil),
            BenchRow(benchmark: "3b status updates", measure: "\(rows.count) single-field updates, one frame, deflated", value: updateWhole, unit: "B/cell",
                     baselineName: "session changeset, deflated", baseline: sessionUpdatePerCell, ratio: updateWhole / sessionUpdatePerCell, goal: "≤ 1.0×",
                     met: updateWhole <= sessionUpdatePerCell),
            BenchRow(benchmark: "3b status updates", measure: "same, as pushed (500-change frames)", value: updateBatched, unit: "B/cell",
                     baselineName: "session changeset, deflated", baseline: sessionUpdatePerCell, ratio: updateBatched / sessionUpdatePerCell, goal: "–", met: nil),
            BenchRow(benchmark: "3b status updates", measure: "\(rows.count) single-field updates, one frame, deflated", value: updateWhole, unit: "B/cell",
                     baselineName: "JSON doc per row, deflated", baseline: Double(jsonUpdate) / updateCells, ratio: updateWhole / (Double(jsonUpdate) / updateCells),
                     goal: "–", met: nil),
        ]
    }

    /// The SQLite session extension's changesets for the same inserts, then the same updates, deflated.
    func sessionChangesets(_ rows: [(id: String, cells: [CellWrite])], statuses: [String]) throws -> (Int, Int) {
        let queue = try plainDatabase("session.sqlite")
        func capture(_ body: (Database) throws -> Void) throws -> Int {
            try queue.writeWithoutTransaction { db in
                var session: UnsafeMutableRawPointer? = nil
                guard csession_create(UnsafeMutableRawPointer(db.sqliteConnection), &session) == 0, let session else { throw BenchError("sqlite3session_create failed") }
                defer { csession_delete(session) }
                guard csession_attach(session, "enquiry") == 0 else { throw BenchError("sqlite3session_attach failed") }
                try db.inTransaction { try body(db); return .commit }
                var size: Int32 = 0
                var buffer: UnsafeMutableRawPointer? = nil
                guard csession_changeset(session, &size, &buffer) == 0, let buffer else { throw BenchError("sqlite3session_changeset failed") }
                defer { csession_free(buffer) }
                return Deflate.compress(Array(UnsafeRawBufferPointer(start: buffer, count: Int(size)))).count
            }
        }
        let inserted = try capture { db in
            let statement = try db.makeStatement(sql: Self.insertSQL(upsert: false))
            for row in rows { try statement.execute(arguments: StatementArguments([row.id] + Self.rowValues(row).map(\.databaseValue))) }
        }
        let updated = try capture { db in
            let statement = try db.makeStatement(sql: "UPDATE enquiry SET status = ? WHERE id = ?")
            for (index, row) in rows.enumerated() { try statement.execute(arguments: [statuses[(index + 1) % statuses.count], row.id]) }
        }
        return (inserted, updated)
    }

    /// CouchDB-style: each changed row travels as its whole JSON document with `_id` and `_rev`.
    static func couchDocuments(_ rows: [(id: String, cells: [CellWrite])], revision: Int, status: ((Int) -> String)?) -> [UInt8] {
        var output = [UInt8]()
        for (index, row) in rows.enumerated() {
            var document: [String: Any] = ["_id": row.id, "_rev": "\(revision)-\(String(format: "%016llx%016llx", UInt64(index) &* 0x9E37_79B9_7F4A_7C15, UInt64(revision) &* 0xBF58_476D_1CE4_E5B9))"]
            for (name, cell) in zip(enquiryColumns, row.cells) {
                switch cell.value {
                case .text(let text): document[name] = text
                case .integer(let integer): document[name] = integer
                default: document[name] = NSNull()
                }
            }
            if let status { document["status"] = status(index) }
            output += (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data()
            output.append(UInt8(ascii: "\n"))
        }
        return output
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// For measurements that never reach a server.
struct UnreachableTransport: SyncTransport {
    func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse {
        throw SyncError.offline("the benchmark's offline replica has no server")
    }
}
