import ArgumentParser
import Foundation
import Logging

/// `--data DIR`: the server's data folder.
struct DataOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The server's data folder (created if missing).", discussion: "Default: $CLINIC_SYNC_DATA, else ./clinic-data.", valueName: "dir"))
    var data: String = ProcessInfo.processInfo.environment["CLINIC_SYNC_DATA"] ?? "clinic-data"
}

/// `--db FILE`: a terminal's replica file.
struct ReplicaOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The terminal's replica file.", discussion: "Default: $CLINIC_SYNC_DB, else ./terminal.sqlite.", valueName: "file"))
    var db: String = ProcessInfo.processInfo.environment["CLINIC_SYNC_DB"] ?? "terminal.sqlite"
}

/// `--json`.
struct JSONFlag: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts instead of text.")
    var json = false
}

/// `--log-level`.
struct LogOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"

    func logger(_ label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
