import ArgumentParser
import Foundation
import SyncServer

extension AdminCommand {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the audit log: enrollments, revocations, moves, erasures, restores, backups and pushes by device.",
            discussion: """
                Ids, counts and codes only, never patient text. Per-push events are kept 400 days, every other kind for good. \
                --since takes an ISO 8601 date or time (2026-11-29, 2026-11-29T08:00:00Z) or an age (90m, 36h, 7d).
                """)
        @OptionGroup var data: DataOption
        @Option(help: ArgumentHelp("Only events since then.", valueName: "when")) var since: String?
        @Option(help: "Only events of this device.") var device: String?
        @Option(help: "At most this many events (the newest).") var limit = 200
        @OptionGroup var output: JSONFlag

        func validate() throws {
            try Check.range(limit, 1...1_000_000, "--limit")
            if let since, Self.date(since, now: Date()) == nil {
                throw ValidationError("--since must be an ISO 8601 date or time (2026-11-29, 2026-11-29T08:00:00Z) or an age (90m, 36h, 7d), not '\(since)'")
            }
        }

        static func date(_ text: String, now: Date) -> Date? {
            if let unit = text.last, let seconds = ["m": 60.0, "h": 3_600, "d": 86_400][String(unit)], let count = Double(text.dropLast()), count >= 0, count.isFinite {
                return now.addingTimeInterval(-count * seconds)
            }
            let formatter = ISO8601DateFormatter()
            if let date = formatter.date(from: text) { return date }
            formatter.formatOptions = [.withFullDate]
            return formatter.date(from: text)
        }

        func run() async throws {
            let events = try await data.store().auditEvents(since: since.flatMap { Self.date($0, now: Date()) }, device: device, limit: limit)
            if output.json {
                try Output.json(events)
            } else if events.isEmpty {
                print("no audit events\(since.map { " since \($0)" } ?? "")")
            } else {
                let formatter = ISO8601DateFormatter()
                print(Output.table(["TIME", "EVENT", "DEVICE", "BRANCH", "DETAIL"], events.map { event in
                    [formatter.string(from: event.at), event.kind, event.device ?? "-", event.branch ?? "-",
                     event.detail.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")]
                }))
            }
        }
    }
}
