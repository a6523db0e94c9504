import ArgumentParser
import Foundation

/// `clinic-sync demo`: the first thing to run.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a server and three terminals at two branches on this machine and show a whole sync story.",
        discussion: """
            No setup: SQLite files go under --dir and stay there for inspection. The folder must be new, empty \
            or one an earlier demo run made (it leaves a .clinic-sync-demo marker); anything else is refused \
            and nothing in it is deleted. For example:
              sqlite3 demo-data/harley-b.sqlite 'SELECT name, status FROM enquiry'
            """)

    @Option(help: "Folder for the demo's SQLite files.") var dir = "demo-data"
    @Option(help: "The fixtures folder (content/ and branches.json); found automatically in a checkout.") var fixtures: String?
    @OptionGroup var output: JSONFlag

    func run() async throws {
        guard let fixtures = fixtures ?? Demo.locateFixtures() else {
            throw CLIError("cannot find the fixtures folder; run from the repository root or pass --fixtures DIR")
        }
        let json = output.json
        let report = try await Demo(directory: dir, fixtures: fixtures, say: { if !json { print($0) } }).run()
        if json { try Output.json(report); return }
        print("")
        print(Output.table(
            ["TERMINAL", "BRANCH", "ENQUIRIES", "CONTENT", "SENT", "RECEIVED", "WIRE BYTES", "RATIO", "SYNC TIME", "CONFLICTS"],
            report.replicas.map {
                [$0.terminal, $0.branch, String($0.enquiries), String($0.contentItems), String($0.changesSent), String($0.changesReceived),
                 String($0.bytesOnWire), String(format: "%.1f×", $0.compressionRatio), String(format: "%.0f ms", $0.syncSeconds * 1000),
                 String($0.openConflicts)]
            }))
        print("")
        print("Files left in \(report.directory)/ — look inside with sqlite3, e.g.:")
        print("  sqlite3 \(report.directory)/harley-b.sqlite 'SELECT name, topic, status FROM enquiry'")
        print("  sqlite3 \(report.directory)/server/server.sqlite 'SELECT table_name, column_name, winner_value, loser_value, resolved FROM sync_conflict'")
    }
}
