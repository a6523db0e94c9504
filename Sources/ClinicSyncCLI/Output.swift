import Foundation

/// Printing for humans and for scripts.
enum Output {
    /// Pretty, sorted-key JSON on standard output.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// A plain text table with a header row, columns padded to fit.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// A duration for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h".
    static func age(_ seconds: TimeInterval) -> String {
        let total = max(0, Int(seconds))
        switch total {
        case ..<60: return "\(total) s"
        case ..<3_600: return "\(total / 60) min"
        case ..<86_400: return "\(total / 3_600) h \(total % 3_600 / 60) min"
        default: return "\(total / 86_400) d \(total % 86_400 / 3_600) h"
        }
    }

    /// Whether standard error is a terminal (progress bars only then).
    static var isInteractive: Bool { isatty(STDERR_FILENO) == 1 }

    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data((text).utf8))
    }
}
