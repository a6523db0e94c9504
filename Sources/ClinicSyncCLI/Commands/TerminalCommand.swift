import ArgumentParser
import Foundation
import Logging
import SyncClient
import SyncCore
import SyncServer
import SyncStorage

/// `clinic-sync terminal`: a reception terminal's local replica — works offline, syncs when it can.
struct TerminalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminal",
        abstract: "Work with a terminal's local replica: enroll, take enquiries, read content, sync, resolve conflicts.",
        discussion: "Every command but `enroll` and `sync` works offline. Name the replica with --db or $CLINIC_SYNC_DB.",
        subcommands: [Enroll.self, Repoint.self, EnquiryCommand.self, ContentCommand.self, Sync.self, Status.self, ConflictsCommand.self, DeadLetters.self, RotateToken.self])

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enroll this replica with a one-time code from `clinic-sync admin device add`.")
        @OptionGroup var replica: ReplicaOption
        @Option(help: "The server's URL, e.g. https://sync.example.org:8443 (http:// only to this machine unless --allow-insecure-http).") var server: String
        @Option(help: "The enrollment code.") var code: String
        @Option(help: "Rename the device (default: keep the name given by `admin device add`).") var name: String?
        @OptionGroup var trust: ServerTrustOptions
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let serverTrust = try self.trust.trust() ?? .system
            // Checked before the file is created, so a refused URL leaves no empty replica behind.
            try cliErrors { try serverTrust.validate(server: server) }
            let existed = FileManager.default.fileExists(atPath: replica.db)
            let identity: ReplicaIdentity
            do {
                identity = try await cliErrors {
                    try await replica.open(creating: true).enroll(server: server, code: code, deviceName: name ?? "", trust: serverTrust)
                }
            } catch {
                // A failed enrollment leaves no empty replica behind for the next command to call "not enrolled".
                if !existed { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: replica.db + suffix) } }
                throw error
            }
            if output.json { try Output.json(identity) } else {
                print("enrolled \(replica.db) as replica \(identity.replica) at \(identity.branch) (\(identity.role.name)); next: clinic-sync terminal sync")
            }
        }
    }

    struct Repoint: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Point this replica at the server's new address, keeping its token, outbox and everything it holds.",
            discussion: """
                For a server that moved (new host or port) or whose certificate changed. `sync` and `daemon` use the new \
                address from then on. --ca-file, --pin-sha256, --system-trust or --allow-insecure-http replace the trust \
                kept from enrollment; without any of them it is kept.
                """)
        @OptionGroup var replica: ReplicaOption
        @Option(help: "The server's new URL, e.g. https://10.0.0.6:8443.") var server: String
        @OptionGroup var trust: ServerTrustOptions
        @Flag(help: "Trust the system's certificate store again, forgetting a CA file or pin given before.") var systemTrust = false
        @OptionGroup var output: JSONFlag

        func validate() throws {
            if systemTrust && (trust.caFile != nil || trust.pinSha256 != nil) {
                throw ValidationError("--system-trust excludes --ca-file and --pin-sha256: choose one")
            }
        }

        func run() throws {
            let replica = try replica.open()
            let serverTrust = try systemTrust ? ServerTrust(allowsInsecureHTTP: self.trust.allowInsecureHttp) : self.trust.trust()
            try cliErrors { try replica.repoint(server: server, trust: serverTrust) }
            let pending = try replica.status().pendingChanges
            if output.json { try Output.json(["server": server, "pending": String(pending)]) } else {
                print("\(replica.path) now syncs with \(server); \(pending) pending change\(pending == 1 ? "" : "s") kept; next: clinic-sync terminal sync")
            }
        }
    }

    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Push local changes and pull everything new, once.",
            discussion: "Exit status 0 on success, 1 on error; with --json the summary (or the error) is printed as JSON. If the server moved, run `terminal repoint --server URL` first.")
        @OptionGroup var replica: ReplicaOption
        @OptionGroup var output: JSONFlag
        @OptionGroup var log: LogOptions

        func run() async throws {
            let replica = try replica.open()
            let engine = SyncEngine(replica: replica, transport: try transport(for: replica), logger: try log.logger("clinic-sync.terminal"))
            let interactive = Output.isInteractive && !output.json
            do {
                let summary = try await engine.syncRecordingOutcome { progress in
                    guard interactive else { return }
                    Output.standardError("\rsync: ↑ \(progress.pushed) sent, \(progress.pending) pending  ↓ \(progress.pulled) received  \(progress.pages) round trips  \(progress.bytesSent + progress.bytesReceived) bytes  ")
                }
                if interactive { Output.standardError("\r\u{1B}[K") }
                if output.json { try Output.json(summary) } else {
                    print("synced: \(summary.pushed) sent (\(summary.rejected) rejected), \(summary.pulled) received, \(summary.purged) purged, "
                          + "\(summary.bytesSent + summary.bytesReceived) bytes in \(summary.roundTrips) round trips, \(String(format: "%.2f", summary.seconds)) s; "
                          + "\(summary.openConflicts) open conflicts")
                }
            } catch let error as SyncError {
                if interactive { Output.standardError("\n") }
                if output.json { try Output.json(["error": error.code.rawValue, "problem": error.problem ?? error.code.rawValue, "detail": error.detail]) }
                throw CLIError(error.description)
            }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token",
            abstract: "Replace this terminal's device token with a new one from the server.",
            discussion: """
                Syncs once, asking for a new token; the old one keeps working until the terminal first uses the new one, \
                so a lost answer locks nothing out. Offline, the request waits for the next sync (the daemon's too). For a \
                token that leaked, have an admin revoke the device and enroll this file again with a new code instead.
                """)
        @OptionGroup var replica: ReplicaOption
        @OptionGroup var output: JSONFlag
        @OptionGroup var log: LogOptions

        func run() async throws {
            let replica = try replica.open()
            guard try replica.identity() != nil else { throw CLIError(ReplicaError.notEnrolled.detail) }
            try cliErrors { try replica.requestTokenRotation() }
            let engine = SyncEngine(replica: replica, transport: try transport(for: replica), logger: try log.logger("clinic-sync.terminal"))
            do {
                _ = try await engine.syncRecordingOutcome()
            } catch let error as SyncError {
                throw CLIError("\(error.description); the rotation waits for the next sync")
            }
            if output.json { try Output.json(["rotated": true]) } else { print("device token rotated; the old one no longer works") }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show who this terminal is and what is waiting.")
        @OptionGroup var replica: ReplicaOption
        @OptionGroup var output: JSONFlag

        func run() throws {
            let status = try replica.open().status()
            if output.json { try Output.json(status) } else { print(Self.render(status).joined(separator: "\n")) }
        }

        /// The text lines: who, where, and how stale — the last success, the last failure after it, the daemon.
        static func render(_ status: ReplicaStatus) -> [String] {
            var lines: [String] = []
            if let identity = status.identity {
                lines.append("replica      \(identity.replica)  (\(identity.role.name) at \(identity.branch))")
                lines.append("server       \(identity.server)")
            } else {
                lines.append("replica      not enrolled (clinic-sync terminal enroll --server URL --code CODE)")
            }
            lines.append("last sync    \(status.lastSyncAt ?? "never")")
            if let failedAt = status.lastFailureAt, failedAt >= (status.lastSyncAt ?? "") {
                lines.append("last failure \(failedAt): \(status.lastFailure ?? "unknown error")  (failing since the last sync)")
            }
            switch (status.daemonPID, status.daemonRunning) {
            case (let pid?, true): lines.append("daemon       running (pid \(pid)), last cycle \(status.daemonSeenAt ?? "?")")
            case (let pid?, false): lines.append("daemon       not running (pid \(pid) last ran a cycle \(status.daemonSeenAt ?? "?"))")
            case (nil, _): lines.append("daemon       never ran on this file")
            }
            lines.append("pending      \(status.pendingChanges) field change\(status.pendingChanges == 1 ? "" : "s") in \(status.pendingRows) row\(status.pendingRows == 1 ? "" : "s") "
                         + "not yet acknowledged by the server (each field of a new enquiry counts)")
            lines.append("conflicts    \(status.openConflicts) open")
            lines.append("dead letters \(status.deadLetters)")
            lines.append("holds        \(status.enquiries) enquiries, \(status.contentItems) content items")
            return lines
        }
    }

    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List local changes the server refused.")
        @OptionGroup var replica: ReplicaOption
        @OptionGroup var output: JSONFlag

        func run() throws {
            let letters = try replica.open().deadLetters()
            if output.json { try Output.json(letters) } else if letters.isEmpty { print("no dead letters") } else {
                print(Output.table(["COUNTER", "TABLE", "ROW", "COLUMN", "REASON", "REJECTED"], letters.map {
                    [String($0.counter), $0.table, $0.row, $0.column, $0.reason, $0.rejectedAt]
                }))
            }
        }
    }
}

func serverURL(_ replica: Replica) throws -> String {
    guard let identity = try replica.identity() else { throw CLIError(ReplicaError.notEnrolled.description) }
    return identity.server
}

/// The transport to the replica's server, with the trust it was enrolled (or repointed) with.
func transport(for replica: Replica) throws -> HTTPTransport {
    _ = try serverURL(replica)
    return try HTTPTransport.forReplica(replica)
}

/// `--ca-file`, `--pin-sha256`, `--allow-insecure-http`: which server certificates a terminal trusts.
struct ServerTrustOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Trust only server certificates issued by this CA (PEM) instead of the system's store. Its content is kept in the replica, so the daemon needs no file.",
        valueName: "file"))
    var caFile: String?
    @Option(help: ArgumentHelp(
        "Trust only a server certificate whose public key has this SHA-256 (base64, as `serve` logs it in tls_pin_sha256), whoever signed it.",
        valueName: "base64"))
    var pinSha256: String?
    @Flag(help: "Allow http:// to a host beyond this machine: the device token and enquiries then cross the network unencrypted.")
    var allowInsecureHttp = false

    func validate() throws {
        if caFile != nil && pinSha256 != nil { throw ValidationError("--ca-file and --pin-sha256 exclude each other: choose one") }
    }

    /// The trust these options give, or nil when none was given.
    func trust() throws -> ServerTrust? {
        guard caFile != nil || pinSha256 != nil || allowInsecureHttp else { return nil }
        let pem = try caFile.map { file in try cliErrors { try ServerTrust.certificateAuthority(file: file) } }
        return ServerTrust(certificateAuthorityPEM: pem, pinnedKeySHA256: pinSha256, allowsInsecureHTTP: allowInsecureHttp)
    }
}

/// Maps library errors to one-line CLI errors.
/// For a write that failed for want of space where no typed error named the file.
let diskFullMessage = "the disk holding this file is full: nothing was written (reading still works); free some space and try again"

func cliErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as SyncError {
        throw CLIError(error.description)
    } catch let error as ReplicaError {
        throw CLIError(error.description)
    } catch let error as StoreError {
        throw CLIError(error.detail)
    } catch let error as BackupError {
        throw CLIError(error.description)
    } catch where StorageConfiguration.isStorageFull(error) {
        throw CLIError(diskFullMessage)
    }
}

func cliErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as SyncError {
        throw CLIError(error.description)
    } catch let error as ReplicaError {
        throw CLIError(error.description)
    } catch let error as StoreError {
        throw CLIError(error.detail)
    } catch let error as BackupError {
        throw CLIError(error.description)
    } catch where StorageConfiguration.isStorageFull(error) {
        throw CLIError(diskFullMessage)
    }
}

