import ArgumentParser
import Foundation
import SyncCore
import SyncServer

/// `clinic-sync admin`: head-office administration on the server's data folder, with or without a
/// running server (SQLite's WAL lets both use the file at once).
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage branches, devices, content, conflicts, erasure, backups and the audit log on the server's data folder.",
        subcommands: [Branch.self, DeviceCommand.self, ContentCommand.self, Conflicts.self, Erase.self, Generate.self, Backup.self, Restore.self, MarkRestored.self, Audit.self])

    struct Branch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add, import or list branches.", subcommands: [Add.self, Import.self, List.self])

        /// Branch ids are slugs: they appear in URLs, file names and scopes.
        static func isValidID(_ id: String) -> Bool {
            id.range(of: "^[a-z0-9][a-z0-9-]*$", options: .regularExpression) != nil
        }

        struct Import: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add (or update) the branches of a JSON file, e.g. fixtures/branches.json.",
                discussion: "Like `branch add`, it creates the data folder's store if there is none.")
            @OptionGroup var data: DataOption
            @Argument(help: "A JSON array of {\"id\", \"name\", \"address\", \"phone\"}.") var file: String
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let branches: [BranchInfo]
                do {
                    branches = try ContentImporter.branches(at: file)
                } catch let error as ContentImporter.ImportError {
                    throw CLIError(error.description)
                }
                for branch in branches where !Branch.isValidID(branch.id) {
                    throw CLIError("\(file): branch id '\(branch.id)' must be lowercase letters, digits and dashes; nothing was imported")
                }
                let store = try data.store(creating: true)
                for branch in branches { try await store.saveBranch(id: branch.id, name: branch.name, address: branch.address, phone: branch.phone) }
                if output.json { try Output.json(["imported": branches.map(\.id)]) } else {
                    print("imported \(branches.count) branch\(branches.count == 1 ? "" : "es"): \(branches.map(\.id).joined(separator: ", "))")
                }
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add a branch (or update its details).")
            @OptionGroup var data: DataOption
            @Option(help: "Short id, e.g. harley-street.") var id: String
            @Option(help: "Display name.") var name: String
            @Option(help: "Postal address.") var address: String?
            @Option(help: "Phone number.") var phone: String?
            @OptionGroup var output: JSONFlag

            func validate() throws {
                guard Branch.isValidID(id) else {
                    throw ValidationError("--id must be lowercase letters, digits and dashes, e.g. harley-street")
                }
            }

            func run() async throws {
                // The first step of a new deployment: the one admin command that creates a store.
                let store = try data.store(creating: true)
                try await store.saveBranch(id: id, name: name, address: address, phone: phone)
                if output.json { try Output.json(["id": id, "name": name]) } else { print("branch \(id) saved") }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List branches.")
            @OptionGroup var data: DataOption
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let branches = try data.store().branches()
                if output.json { try Output.json(branches) } else {
                    print(Output.table(["ID", "NAME", "ADDRESS"], branches.map { [$0.id, $0.name, $0.address ?? ""] }))
                }
            }
        }
    }

    struct DeviceCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "device", abstract: "Issue enrollment codes, list, move, rotate tokens of, revoke and remove devices.", subcommands: [Add.self, List.self, Move.self, RotateToken.self, Revoke.self, Remove.self])

        struct Move: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Move a device to another branch.",
                discussion: """
                    A device not yet enrolled moves at once. An enrolled one moves at its next sync with nothing left to push, \
                    so what it wrote for its old branch is stored there first; then it deletes the old branch's enquiries, \
                    notes and conflicts (text gone from its files) and reads the new branch's. Moving it back to its own \
                    branch before then cancels the move. `admin device list` shows a pending move.
                    """)
            @OptionGroup var data: DataOption
            @Argument(help: "The device id.") var id: String
            @Option(help: "The branch to move it to.") var branch: String
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let device = try await cliErrors { try await data.store().moveDevice(id: id, to: branch) }
                if output.json { try Output.json(device) } else if let target = device.movingTo {
                    print("device \(device.id) (\(device.name)) moves from \(device.branch) to \(target) at its next sync, once its pending changes are sent")
                } else {
                    print("device \(device.id) (\(device.name)) is at \(device.branch)\(device.enrolledAt == nil ? "; it enrolls there" : "; no move pending")")
                }
            }
        }


        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a device and print its one-time enrollment code.",
                discussion: "The code is valid for 24 hours and works once; the terminal exchanges it with `clinic-sync terminal enroll`.")
            @OptionGroup var data: DataOption
            @Option(help: "The branch the device belongs to.") var branch: String
            @Option(help: "A name for the device, e.g. reception-1.") var name = "terminal"
            @Option(help: "terminal (its branch's enquiries) or editor (content too).") var role = "terminal"
            @OptionGroup var output: JSONFlag

            func validate() throws {
                guard DeviceRole(name: role) != nil else { throw ValidationError("--role must be terminal or editor") }
            }

            func run() async throws {
                let store = try data.store()
                let (device, code) = try await store.issueEnrollmentCode(branch: branch, name: name, role: DeviceRole(name: role)!)
                if output.json {
                    try Output.json(["device": device.id, "branch": device.branch, "code": code])
                } else {
                    print("device \(device.id) (\(device.role.name) at \(device.branch))")
                    print("enrollment code: \(code)   (one use, valid 24 h)")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List devices, with the replica id each enrolled as and whether it has gone stale.",
                discussion: """
                    LAST SEEN is the last request with the device's token, refused or failed ones too (to the minute); LAST SYNC \
                    is its last successful sync; PENDING (local changes not yet sent) and VERSION are what it \
                    said then. A branch shown as A → B is a move waiting for the device's next sync. A device is stale when it \
                    is enrolled, not revoked, and has not synced for --stale-after seconds.
                    """)
            @OptionGroup var data: DataOption
            @Option(help: ArgumentHelp("Seconds without a sync after which a device is stale.", valueName: "seconds")) var staleAfter = 3_600.0
            @OptionGroup var output: JSONFlag

            /// One device as listed: the device, its state in words, and the stale flag.
            struct Listed: Encodable {
                var device: Device
                var state: String
                var stale: Bool

                func encode(to encoder: any Encoder) throws {
                    try device.encode(to: encoder)
                    var container = encoder.container(keyedBy: Keys.self)
                    try container.encode(state, forKey: .state)
                    try container.encode(stale, forKey: .stale)
                }

                enum Keys: String, CodingKey { case state, stale }
            }

            func validate() throws { try Check.seconds(staleAfter, 1...Check.year, "--stale-after") }

            static func listing(_ devices: [Device], now: Date, staleAfter: TimeInterval) -> [Listed] {
                devices.map { device in
                    let stale = device.isStale(now: now, threshold: staleAfter)
                    let state = device.isRevoked ? "revoked" : device.enrolledAt == nil ? "awaiting enrollment" : stale ? "STALE" : "enrolled"
                    return Listed(device: device, state: state, stale: stale)
                }
            }

            static func table(_ listed: [Listed], now: Date) -> String {
                let formatter = ISO8601DateFormatter()
                func when(_ date: Date?) -> String { date.map { "\(formatter.string(from: $0)) (\(Output.age(now.timeIntervalSince($0))) ago)" } ?? "never" }
                return Output.table(["ID", "NAME", "REPLICA", "BRANCH", "ROLE", "STATE", "LAST SEEN", "LAST SYNC", "PENDING", "VERSION"], listed.map { item in
                    let device = item.device
                    let branch = device.movingTo.map { "\(device.branch) → \($0)" } ?? device.branch
                    return [device.id, device.name, device.replica?.description ?? "-", branch, device.role.name, item.state,
                            when(device.lastContactAt), when(device.lastSeenAt), device.pending.map(String.init) ?? "-", device.appVersion ?? "-"]
                })
            }

            func run() async throws {
                let now = Date()
                let listed = Self.listing(try await data.store().devices(), now: now, staleAfter: staleAfter)
                if output.json { try Output.json(listed) } else { print(Self.table(listed, now: now)) }
            }
        }

        struct RotateToken: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "rotate-token",
                abstract: "Give a device a new token at its next sync (routine rotation).",
                discussion: """
                    The device's next sync answer carries a new token; its current one works until the device first uses \
                    the new one. For a token that leaked, use `admin device revoke` and enroll the terminal's file again \
                    with a new code (`terminal enroll --code` keeps everything it holds): rotation would hand the new \
                    token to whoever holds the old one.
                    """)
            @OptionGroup var data: DataOption
            @Argument(help: "The device id.") var id: String
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let device = try await cliErrors { try await data.store().requestTokenRotation(id: id) }
                if output.json { try Output.json(device) } else { print("device \(device.id) (\(device.name)) gets a new token at its next sync") }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a device: its next request is refused.")
            @OptionGroup var data: DataOption
            @Argument(help: "The device id.") var id: String
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let device = try await cliErrors { try await data.store().revokeDevice(id: id) }
                if output.json { try Output.json(device) } else { print("device \(device.id) revoked") }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove a revoked or never-enrolled device from the list.",
                discussion: "An enrolled device must be revoked first. What it synced stays on the server.")
            @OptionGroup var data: DataOption
            @Argument(help: "The device id.") var id: String
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let device = try await cliErrors { try await data.store().removeDevice(id: id) }
                if output.json { try Output.json(["removed": device.id]) } else { print("device \(device.id) (\(device.name)) removed") }
            }
        }
    }

    struct ContentCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "content", abstract: "Import content.", subcommands: [Import.self])

        struct Import: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "import",
                abstract: "Import Markdown files with front matter as content rows.",
                discussion: "PATH is a .md file or a folder of them (see fixtures/README.md for the front matter). Re-importing updates rows in place.")
            @OptionGroup var data: DataOption
            @Argument(help: "A Markdown file or a folder of them.") var path: String
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let items = try ContentImporter.items(at: path)
                let store = try data.store()
                // Content limited to a branch that does not exist would reach no terminal: most likely a typo.
                let known = Set(try store.branches().map(\.id))
                if let stray = items.first(where: { $0.branch.map { !known.contains($0) } ?? false }), let branch = stray.branch {
                    throw CLIError("content '\(stray.id)' is for branch '\(branch)', which does not exist; add it with `clinic-sync admin branch add` first; nothing was imported")
                }
                try await store.write(items.flatMap(\.cells))
                if output.json { try Output.json(["imported": items.map(\.id)]) } else {
                    print("imported \(items.count) content item\(items.count == 1 ? "" : "s"): \(items.map(\.id).joined(separator: ", "))")
                }
            }
        }
    }

    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Conflicts recorded by the server.", subcommands: [List.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List conflicts (open ones unless --all).")

            /// Each side as its device's name with the replica id beside it (conflicts record replicas).
            static func rows(_ conflicts: [ConflictRecord]) -> [[String]] {
                func who(_ device: String?, _ replica: String) -> String { device.map { "\($0) (\(replica))" } ?? replica }
                return conflicts.map {
                    [String($0.id.prefix(8)), $0.table, $0.row, $0.column, who($0.winnerDevice, $0.winnerReplica), who($0.loserDevice, $0.loserReplica),
                     $0.branch, $0.resolved ? "resolved" : "open"]
                }
            }

            @OptionGroup var data: DataOption
            @Flag(help: "Include resolved conflicts.") var all = false
            @OptionGroup var output: JSONFlag

            func run() async throws {
                let conflicts = try await data.store().conflicts(includeResolved: all)
                if output.json { try Output.json(conflicts) } else if conflicts.isEmpty { print("no \(all ? "" : "open ")conflicts") } else {
                    print(Output.table(["ID", "TABLE", "ROW", "COLUMN", "WINNER", "LOSER", "BRANCH", "STATE"], Self.rows(conflicts)))
                }
            }
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase an enquiry everywhere (UK GDPR erasure).",
            discussion: "Removes every stored value of the enquiry, its notes and conflicts on the server; terminals delete it on their next sync.")
        @OptionGroup var data: DataOption
        @Argument(help: "The enquiry id.") var id: String
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let erasure = try await cliErrors { try await data.store().eraseHeld(.enquiry, row: id) }
            if output.json { try Output.json(["id": id, "outcome": erasure == .erased ? "erased" : "already_erased"]) } else {
                print(erasure == .erased ? "enquiry \(id) erased; terminals delete it on their next sync" : "enquiry \(id) was already erased; nothing to do")
            }
        }
    }

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add deterministic synthetic enquiries (obviously fake people) for tests and demos.")
        @OptionGroup var data: DataOption
        @Option(help: "How many enquiries.") var enquiries = 100
        @Option(help: "Seed: the same seed gives the same enquiries.") var seed: UInt64 = 1
        @Option(help: "Only this branch (default: spread over every branch).") var branch: String?
        @OptionGroup var output: JSONFlag

        func validate() throws { try Check.range(enquiries, 1...10_000_000, "--enquiries") }

        func run() async throws {
            let store = try data.store()
            let branches = try branch.map { [$0] } ?? store.branches().map(\.id)
            guard !branches.isEmpty else { throw CLIError("no branches yet: add one with `clinic-sync admin branch add`") }
            let rows = SyntheticEnquiries.generate(count: enquiries, seed: seed, branches: branches)
            for chunk in stride(from: 0, to: rows.count, by: 2_000) {
                try await store.write(rows[chunk..<min(chunk + 2_000, rows.count)].flatMap(\.cells))
            }
            if output.json { try Output.json(["generated": rows.count]) } else { print("generated \(rows.count) enquiries over \(branches.joined(separator: ", "))") }
        }
    }
}
