import ArgumentParser
import SyncCore

/// The `clinic-sync` command: every subcommand of the project lives under it.
public struct ClinicSyncCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "clinic-sync",
        abstract: "Offline-first sync for the clinic's terminals: server, terminal, admin and tools.",
        discussion: """
            Start with `clinic-sync demo`: it runs a server and three terminals at two branches on this machine \
            and shows a whole sync story in a few seconds.
            """,
        version: BuildInfo.version,
        subcommands: [
            DemoCommand.self, ServeCommand.self, AdminCommand.self, TerminalCommand.self, DaemonCommand.self, BenchCommand.self, LoadgenCommand.self, SimulateCommand.self,
            DecodeCommand.self,
        ]
    )

    public init() {}
}

extension ClinicSyncCommand {
    /// Parses the process arguments and runs the chosen subcommand, async or not.
    ///
    /// ArgumentParser picks the synchronous `main()` from top-level code, so dispatch explicitly.
    public static func runMain() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
