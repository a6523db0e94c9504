import ArgumentParser
import Foundation
import SyncServer

extension AdminCommand {
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
