import Foundation
import Logging
import SyncClient
import SyncCore
import SyncServer
import SyncStorage

/// The one-command tour: a server and three terminals at two branches on this machine, with real
/// SQLite files, real HTTP on loopback and real zlib. Used by `clinic-sync demo` and by its test.
public struct Demo: Sendable {
    /// One terminal's line in the closing table.
    public struct ReplicaRow: Sendable, Codable {
        public var terminal: String
        public var branch: String
        public var enquiries: Int
        public var contentItems: Int
        public var changesSent: Int
        public var changesReceived: Int
        public var bytesOnWire: Int
        public var frameBytes: Int
        public var syncSeconds: Double
        public var openConflicts: Int

        /// Frame bytes per wire byte.
        public var compressionRatio: Double { bytesOnWire == 0 ? 1 : Double(frameBytes) / Double(bytesOnWire) }
    }

    /// What the demo showed, for the summary and for tests.
    public struct Report: Sendable, Codable {
        public var directory: String
        public var replicas: [ReplicaRow]
        public var conflictSeen: [String: Int]
        public var conflictValues: [String]
        public var openConflictsAfterResolution: Int
        public var otherBranchSawEnquiries: Int
        public var manualTherapyTitle: String?
    }

    public var directory: String
    public var contentDirectory: String
    public var branchesFile: String
    var say: @Sendable (String) -> Void

    public init(directory: String, fixtures: String, say: @escaping @Sendable (String) -> Void = { print($0) }) {
        self.directory = directory
        self.contentDirectory = (fixtures as NSString).appendingPathComponent("content")
        self.branchesFile = (fixtures as NSString).appendingPathComponent("branches.json")
        self.say = say
    }

    /// Finds the repository's fixtures folder from the working directory or from this source file.
    public static func locateFixtures() -> String? {
        let candidates = [
            FileManager.default.currentDirectoryPath + "/fixtures",
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("fixtures").path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/content") }
    }

    /// The file that marks a folder as the demo's own, so a later run may clear it.
    static let marker = ".clinic-sync-demo"
    static let terminalNames = ["harley-a", "harley-b", "canary-a"]

    /// Everything the demo writes in its folder: a later run deletes these and nothing else.
    static var ownEntries: Set<String> {
        var names: Set<String> = [marker, "server"]
        for name in terminalNames { for suffix in ["", "-wal", "-shm"] { names.insert("\(name).sqlite\(suffix)") } }
        return names
    }

    /// Makes `directory` an empty folder of the demo's own. A folder the demo did not create (no marker)
    /// that holds anything, or one holding files the demo does not write, is refused untouched: it may be
    /// a real server store or someone's notes.
    func prepareDirectory() throws {
        let manager = FileManager.default
        let entries = (try? manager.contentsOfDirectory(atPath: directory)) ?? []
        let serverEntries = (try? manager.contentsOfDirectory(atPath: directory + "/server")) ?? []
        if !entries.isEmpty {
            let foreign = entries.filter { !Self.ownEntries.contains($0) }
                + serverEntries.filter { !$0.hasPrefix(SQLiteServerStore.fileName) && $0 != SQLiteServerStore.markerName }.map { "server/" + $0 }
            guard entries.contains(Self.marker), foreign.isEmpty else {
                throw CLIError("\(directory) is not empty and was not created by the demo (\(foreign.sorted().prefix(3).joined(separator: ", "))); "
                                + "nothing was deleted: pass --dir with a new or empty folder")
            }
            for entry in entries { try manager.removeItem(atPath: directory + "/" + entry) }
        }
        try PrivateFiles.createDirectory(directory)
        guard manager.createFile(atPath: directory + "/" + Self.marker, contents: Data("made by `clinic-sync demo`; the next demo run may clear this folder\n".utf8)) else {
            throw CLIError("cannot write in \(directory)")
        }
    }

    public func run() async throws -> Report {
        try prepareDirectory()
        let quiet = {
            var logger = Logger(label: "clinic-sync.demo")
            logger.logLevel = .critical
            return logger
        }()

        // 1. Head office: the embedded store, the clinic's branches and its content.
        let store = try SQLiteServerStore(directory: directory + "/server")
        let branches = try ContentImporter.branches(at: branchesFile)
        for branch in branches { try await store.saveBranch(id: branch.id, name: branch.name, address: branch.address, phone: branch.phone) }
        let content = try ContentImporter.items(at: contentDirectory)
        try await store.write(content.flatMap(\.cells))
        say("① head office: \(branches.count) branches and \(content.count) content items in \(directory)/server/server.sqlite")

        return try await withRunningServer(ServerConfiguration(port: 0), store: store, logger: quiet) { port in
            let url = "http://127.0.0.1:\(port)"
            say("② server listening on \(url)")
            var terminals: [(name: String, replica: Replica, engine: SyncEngine)] = []
            for (name, branch) in zip(Self.terminalNames, ["harley-street", "harley-street", "canary-wharf"]) {
                let (_, code) = try await store.issueEnrollmentCode(branch: branch, name: name, role: .terminal)
                let replica = try Replica.open(at: "\(directory)/\(name).sqlite")
                try await replica.enroll(server: url, code: code, deviceName: name)
                terminals.append((name, replica, SyncEngine(replica: replica, transport: HTTPTransport(baseURL: url), logger: quiet)))
            }
            var totals: [String: SyncSummary] = [:]
            func sync(_ index: Int) async throws -> SyncSummary {
                let summary = try await terminals[index].engine.sync()
                var total = totals[terminals[index].name] ?? SyncSummary()
                total.pushed += summary.pushed
                total.pulled += summary.pulled
                total.bytesSent += summary.bytesSent
                total.bytesReceived += summary.bytesReceived
                total.frameBytesSent += summary.frameBytesSent
                total.frameBytesReceived += summary.frameBytesReceived
                total.seconds += summary.seconds
                totals[terminals[index].name] = total
                return summary
            }
            for index in terminals.indices {
                let summary = try await sync(index)
                say("③ \(terminals[index].name) enrolled and bootstrapped: \(summary.pulled) cells, \(summary.bytesReceived) bytes")
            }

            // 4. Harley Street takes enquiries with its link down: nothing but the local file.
            let (a, b, canary) = (terminals[0].replica, terminals[1].replica, terminals[2].replica)
            var ids: [String] = []
            for row in SyntheticEnquiries.generate(count: 3, seed: 2026, branches: ["harley-street"]) {
                let cells = Dictionary(uniqueKeysWithValues: row.cells.map { ($0.column, $0.value) })
                ids.append(try a.enquiries.add(NewEnquiry(
                    name: cells[Columns.Enquiry.name]?.text ?? "Test Patient", phone: cells[Columns.Enquiry.phone]?.text,
                    email: cells[Columns.Enquiry.email]?.text, topic: cells[Columns.Enquiry.topic]?.text,
                    message: cells[Columns.Enquiry.message]?.text, preferredContact: "phone")))
            }
            say("④ harley-a offline: took \(ids.count) enquiries, \(try a.status().pendingChanges) changes waiting in its outbox")
            let pushed = try await sync(0)
            _ = try await sync(1)
            _ = try await sync(2)
            let otherBranch = try canary.enquiries.list().count
            say("⑤ link back: harley-a sent \(pushed.pushed) changes; harley-b now holds \(try b.enquiries.list().count) enquiries; canary-a holds \(otherBranch) (another branch's enquiries never leave it)")

            // 6. The same field edited on both Harley Street terminals while offline.
            try a.enquiries.update(ids[0], status: "booked")
            try b.enquiries.update(ids[0], status: "contacted")
            _ = try await sync(0)
            _ = try await sync(1)
            _ = try await sync(0)
            let seenA = try a.conflicts.list(), seenB = try b.conflicts.list()
            let conflict = seenB.first
            say("⑥ concurrent edit of one status: both now show '\(try a.enquiries.get(ids[0])?.status ?? "?")'; "
                + "conflict \(conflict.map { String($0.id.prefix(8)) } ?? "none") visible on harley-a (\(seenA.count)) and harley-b (\(seenB.count)), "
                + "values kept: \(conflict?.winnerValue ?? "-") / also written: \(conflict?.loserValue ?? "-")")

            // 7. Reception at harley-b resolves it; after a sync it is resolved everywhere.
            if let conflict { try b.conflicts.resolve(conflict.id, keep: .value("booked")) }
            _ = try await sync(1)
            _ = try await sync(0)
            let open = try a.conflicts.list().count + b.conflicts.list().count
            say("⑦ resolved on harley-b (keep 'booked'); after sync: \(open) open conflicts, status '\(try a.enquiries.get(ids[0])?.status ?? "?")' on both")

            let title = try canary.content.item(slug: "manual-therapy")?.title
            say("⑧ canary-a reads offline: \(title ?? "missing") — `clinic-sync terminal content show manual-therapy --db \(directory)/canary-a.sqlite`")

            var rows: [ReplicaRow] = []
            for terminal in terminals {
                let status = try terminal.replica.status()
                let total = totals[terminal.name] ?? SyncSummary()
                rows.append(ReplicaRow(
                    terminal: terminal.name, branch: status.identity?.branch ?? "?", enquiries: status.enquiries, contentItems: status.contentItems,
                    changesSent: total.pushed, changesReceived: total.pulled, bytesOnWire: total.bytesSent + total.bytesReceived,
                    frameBytes: total.frameBytesSent + total.frameBytesReceived, syncSeconds: total.seconds, openConflicts: status.openConflicts))
            }
            return Report(
                directory: directory, replicas: rows, conflictSeen: ["harley-a": seenA.count, "harley-b": seenB.count],
                conflictValues: [conflict?.winnerValue, conflict?.loserValue].compactMap { $0 }, openConflictsAfterResolution: open,
                otherBranchSawEnquiries: otherBranch, manualTherapyTitle: title)
        }
    }
}

