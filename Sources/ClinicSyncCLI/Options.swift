import ArgumentParser
import Foundation
import Logging
import SyncClient
import SyncServer

/// `--data DIR`: the server's data folder.
struct DataOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The server's data folder.",
        discussion: "Default: $CLINIC_SYNC_DATA, else ./clinic-data. Only `serve`, `admin branch add` and `admin branch import` create a missing store; every other command refuses one.",
        valueName: "dir"))
    var data: String = ProcessInfo.processInfo.environment["CLINIC_SYNC_DATA"] ?? "clinic-data"

    /// Opens the store; a missing one is refused unless this command is one that sets a store up.
    func store(creating: Bool = false) throws -> SQLiteServerStore {
        try cliErrors { try SQLiteServerStore(directory: data, creating: creating) }
    }
}

/// `--db FILE`: a terminal's replica file.
struct ReplicaOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The terminal's replica file.",
        discussion: "Default: $CLINIC_SYNC_DB, else ./terminal.sqlite. Only `terminal enroll` creates a missing file; every other command refuses one.",
        valueName: "file"))
    var db: String = ProcessInfo.processInfo.environment["CLINIC_SYNC_DB"] ?? "terminal.sqlite"

    /// Opens the replica; a missing file is refused unless this command is `terminal enroll`.
    func open(creating: Bool = false) throws -> Replica {
        try cliErrors { try Replica.open(at: db, creating: creating) }
    }
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

/// Range checks for operator input. A value out of range is a usage error naming the option and the range;
/// nothing is wrapped, clamped or trapped on (`serve --port 80000` once listened on 14464).
enum Check {
    static func port(_ value: Int, _ option: String = "--port") throws {
        guard (0...65_535).contains(value) else { throw ValidationError("\(option) must be 0–65535 (0 picks a free port), not \(value)") }
    }

    static func range<T: Comparable & CustomStringConvertible>(_ value: T, _ range: ClosedRange<T>, _ option: String, unit: String = "") throws {
        guard range.contains(value) else {
            throw ValidationError("\(option) must be \(range.lowerBound)–\(range.upperBound)\(unit.isEmpty ? "" : " " + unit), not \(value)")
        }
    }

    /// Seconds as a finite number in `range` (inf and nan parse as Doubles, and would trap once made integers).
    static func seconds(_ value: Double, _ range: ClosedRange<Double>, _ option: String) throws {
        guard value.isFinite, range.contains(value) else {
            throw ValidationError("\(option) must be \(range.lowerBound.formatted())–\(range.upperBound.formatted()) seconds, not \(value)")
        }
    }

    /// The longest interval anything here waits or looks back: a year.
    static let year = 366.0 * 86_400
}
