import ArgumentParser
import Foundation
import SyncServer

extension AdminCommand {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the server's store to a file, consistently, while the server runs.",
            discussion: """
                Takes one snapshot (SQLite's VACUUM INTO: syncs carry on meanwhile) and writes it owner-only to FILE, \
                gzip-compressed with --compress (then `gzip -dc` also reads it). FILE appears only once complete; an \
                existing file is never overwritten. The erasure ledger (DIR/erasures.log) is not in the backup on \
                purpose: `admin restore` replays it, so enquiries erased after the backup stay erased. Patient data: \
                keep backups encrypted at rest and off the server's disk.
                """)
        @OptionGroup var data: DataOption
        @Option(help: ArgumentHelp("The backup file to write, e.g. /backups/clinic-$(date +%F).sqlite.gz.", valueName: "file")) var to: String
        @Flag(help: "gzip the backup (typically a third of the size).") var compress = false
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let store = try data.store()
            let report = try await cliErrors { try await store.backup(to: to, compress: compress) }
            try? await store.recordAudit("backup", detail: ["file": report.path, "last_seq": String(report.lastSeq), "bytes": String(report.fileBytes)])
            if output.json { try Output.json(report) } else {
                print("backed up store \(report.storeID) (up to change \(report.lastSeq)) to \(report.path): "
                      + "\(report.fileBytes) bytes\(report.compressed ? " (compressed from \(report.storeBytes))" : "") "
                      + "in \(String(format: "%.1f", report.seconds)) s")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a backup back in place of the server's store (server stopped); terminals re-converge.",
            discussion: """
                Stop the server first. The backup (plain or gzip) is checked before anything changes: it must be a sound \
                ClinicSync store and, if DIR already holds one, a backup of that same store. The current store is moved \
                to DIR/replaced-TIMESTAMP/, never deleted. The restored store is marked restored (like `admin \
                mark-restored`): each terminal re-sends what it wrote that the backup lacks and reads everything again on \
                its next sync. Every erasure in DIR/erasures.log is applied again, so an enquiry erased after the backup \
                was taken stays erased. Then start the server.
                """)
        @OptionGroup var data: DataOption
        @Option(help: ArgumentHelp("The backup to restore.", valueName: "file")) var from: String
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let report = try await cliErrors { try await SQLiteServerStore.restore(directory: data.data, from: from) }
            if output.json { try Output.json(report) } else {
                print("restored store \(report.storeID) from \(report.from) (up to change \(report.lastSeq)); new epoch \(report.epoch): "
                      + "terminals re-send what it lacks on their next sync")
                print("erasures applied again: \(report.erasuresReplayed)")
                if let previous = report.previousStore { print("the store it replaced is kept in \(previous)") }
                print("next: start the server")
            }
        }
    }

    /// After putting a backup of the store back by hand: tell every terminal (SPEC 7.9).
    struct MarkRestored: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mark-restored",
            abstract: "Mark the server's store as restored from a backup, so every terminal re-sends what it holds.",
            discussion: """
                Run it (with the server stopped or running) after putting an older copy of server.sqlite back. The store \
                gets a new epoch; each terminal notices on its next sync, re-sends every change it wrote that the backup \
                may lack, and reads everything again. The server also notices on its own when a terminal has seen more than \
                the store holds, but only once such a terminal syncs: marking the store says so at once.
                """)
        @OptionGroup var data: DataOption
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let path = (data.data as NSString).appendingPathComponent(SQLiteServerStore.fileName)
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError("no server store at \(path): nothing to mark (check --data)")
            }
            let store = try SQLiteServerStore(directory: data.data)
            let previous = try await store.epoch()
            let epoch = try await store.markRestored()
            if output.json {
                try Output.json(["previous_epoch": previous, "epoch": epoch])
            } else {
                print("store epoch \(previous) → \(epoch): terminals re-send what they hold on their next sync")
            }
        }
    }
}
