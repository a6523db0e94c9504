import ArgumentParser
import Foundation
import SyncBench

/// `clinic-sync loadgen`: many protocol-level terminals against a server running in its own process.
struct LoadgenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Load a running server with many terminals over HTTP and report throughput, latency and the server's RSS and CPU.",
        discussion: """
            Makes branches load-1 … load-B and one device per terminal in the server's data folder (--data, as \
            `admin` does; the server keeps running), enrolls each over HTTP, then runs real sync requests: busy \
            terminals push --changes-per-sync new enquiry cells per sync, back to back; the others pull every \
            --pull-interval seconds. Terminals store nothing, so thousands fit in this process. Build both with \
            -c release; the devices stay in the store (revoke or remove them afterwards, or use a scratch folder). \
            Only for loopback or your own test hosts.
            """)

    @Option(help: ArgumentHelp("The running server, e.g. http://127.0.0.1:8080.", valueName: "url")) var server: String
    @OptionGroup var data: DataOption
    @Option(help: "How many terminals.") var terminals: Int
    @Option(help: "Changes (cells) a busy terminal pushes per sync; ten make one new enquiry.") var changesPerSync = 20
    @Option(help: ArgumentHelp("Seconds of load after enrollment.", valueName: "seconds")) var duration = 30.0
    @Option(help: "How many branches the terminals are spread over.") var branches = 1
    @Option(help: ArgumentHelp("Seconds between an idle terminal's pulls.", valueName: "seconds")) var pullInterval = 30.0
    @Option(help: ArgumentHelp("How many terminals push (the rest only pull); default: all.", valueName: "k")) var busy: Int?
    @Option(help: ArgumentHelp("The server's process id, for its RSS and CPU; default: the process listening on the URL's port.", valueName: "pid"))
    var serverPid: Int32?
    @Option(help: "Cells asked for per pull page.") var pageLimit: UInt32 = 2_000
    @OptionGroup var output: JSONFlag

    func validate() throws {
        guard let url = URLComponents(string: server), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw ValidationError("--server must be a URL such as http://127.0.0.1:8080")
        }
        try Check.range(terminals, 1...20_000, "--terminals")
        try Check.range(changesPerSync, 1...5_000, "--changes-per-sync")
        try Check.seconds(duration, 0.1...86_400, "--duration")
        try Check.range(branches, 1...1_000, "--branches")
        try Check.seconds(pullInterval, 0.01...86_400, "--pull-interval")
        if let busy { try Check.range(busy, 0...terminals, "--busy", unit: "(at most --terminals)") }
        try Check.range(pageLimit, 1...1_000_000, "--page-limit")
    }

    func run() async throws {
        var configuration = LoadConfiguration(server: server, data: data.data, terminals: terminals)
        configuration.changesPerSync = changesPerSync
        configuration.duration = duration
        configuration.branches = branches
        configuration.pullInterval = pullInterval
        configuration.busy = busy
        configuration.serverPID = serverPid
        configuration.pageLimit = pageLimit
        let json = output.json
        let report = try await LoadGenerator(configuration: configuration, say: { if !json { Output.standardError($0 + "\n") } }).run()
        if json { try Output.json(report) } else { print(report.text) }
    }
}
