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
        subcommands: [Enroll.self, Repoint.self, EnquiryCommand.self, ContentCommand.self, Sync.self, Status.self, ConflictsCommand.self, DeadLetters.self])

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enroll this replica with a one-time code from `clinic-sync admin device add`.")
        @OptionGroup var replica: ReplicaOption
        @Option(help: "The server's URL, e.g. http://127.0.0.1:8080.") var server: String
        @Option(help: "The enrollment code.") var code: String
        @Option(help: "Rename the device (default: keep the name given by `admin device add`).") var name: String?
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let existed = FileManager.default.fileExists(atPath: replica.db)
            let identity: ReplicaIdentity
            do {
                identity = try await cliErrors { try await replica.open(creating: true).enroll(server: server, code: code, deviceName: name ?? "") }
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
            discussion: "For a server that moved (new host or port). `sync` and `daemon` use the new address from then on.")
        @OptionGroup var replica: ReplicaOption
        @Option(help: "The server's new URL, e.g. http://10.0.0.6:8080.") var server: String
        @OptionGroup var output: JSONFlag

        func run() throws {
            let replica = try replica.open()
            try cliErrors { try replica.repoint(server: server) }
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
            let engine = SyncEngine(replica: replica, transport: try HTTPTransport(baseURL: serverURL(replica)), logger: try log.logger("clinic-sync.terminal"))
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

