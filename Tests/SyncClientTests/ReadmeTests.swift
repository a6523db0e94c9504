import Foundation
import Testing

/// Runs the command lines of README.md's shell blocks, as documented, with the built `clinic-sync`
/// in a scratch folder, so that the README and the CLI cannot drift apart (issue 14, item 8).
///
/// Only what cannot run here is replaced: the build line (the test uses the binary `swift test`
/// built), port 8080 (a free port: the machine may be running other servers), the placeholder
/// enrollment code (the one `admin device add` printed), and `serve … &` (started in the background
/// and stopped with SIGTERM at the end).
@Suite("README")
struct ReadmeTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The built executable beside this test bundle's build products.
    static var binary: String? {
        // First beside the running test bundle, so that a build with --scratch-path tests its own binary.
        if let bundle = Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent("clinic-sync").path,
           FileManager.default.isExecutableFile(atPath: bundle)
        {
            return bundle
        }
        for configuration in ["debug", "release"] {
            let path = repository.appendingPathComponent(".build/\(configuration)/clinic-sync").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// The lines of every ```sh block, in order.
    static func shellLines(_ markdown: String) -> [String] {
        var lines: [String] = [], inside = false
        for line in markdown.components(separatedBy: "\n") {
            if line.hasPrefix("```") {
                inside = !inside && line == "```sh"
                continue
            }
            if inside, !line.trimmingCharacters(in: .whitespaces).isEmpty { lines.append(line) }
        }
        return lines
    }

    /// Splits a shell line into words: double and single quotes, `#` comments. Enough for the README.
    static func words(_ line: String) -> [String] {
        var words: [String] = [], word = "", quote: Character?, started = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { word.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                started = true
            } else if character == " " {
                if started || !word.isEmpty { words.append(word) }
                word = ""
                started = false
            } else if character == "#", word.isEmpty, !started {
                return words
            } else {
                word.append(character)
            }
        }
        if started || !word.isEmpty { words.append(word) }
        return words
    }

    struct Run {
        var status: Int32
        var output: String
    }

    static func run(_ binary: String, _ arguments: [String], in directory: String, environment: [String: String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }

    @Test func everyDocumentedCommandLineRuns() async throws {
        let binary = try #require(Self.binary, "build clinic-sync first (swift test builds it)")
        let readme = try String(contentsOf: Self.repository.appendingPathComponent("README.md"), encoding: .utf8)
        let lines = Self.shellLines(readme)
        #expect(lines.count >= 10, "\(lines)")
        let scratch = NSTemporaryDirectory() + "clinic-sync-readme-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: scratch + "/fixtures", withDestinationPath: Self.repository.appendingPathComponent("fixtures").path)
        let port = try OperatorErrorTests.closedPort()
        var environment = ProcessInfo.processInfo.environment
        environment["CLINIC_SYNC_DATA"] = nil
        environment["CLINIC_SYNC_DB"] = nil
        var server: Process?
        var code: String?
        defer {
            server?.terminate()
            try? FileManager.default.removeItem(atPath: scratch)
        }

        for line in lines {
            var words = Self.words(line.replacingOccurrences(of: "8080", with: String(port)))
            if words.first == "swift" && words.dropFirst().first == "run" { words.removeFirst(2) }
            if words.first == "swift" { continue }  // build and test lines: this test runs inside them
            if words.first == "export", let assignment = words.dropFirst().first, let equals = assignment.firstIndex(of: "=") {
                environment[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
                continue
            }
            if words.first == "curl" {
                let run = try Self.run("/usr/bin/curl", ["-sf"] + words.dropFirst(), in: scratch, environment: environment)
                #expect(run.status == 0, "\(line): \(run.output)")
                if line.contains("healthz") { #expect(run.output.contains(#""status":"ok""#), "\(run.output)") }
                continue
            }
            try #require(words.first == "clinic-sync", "an undocumented kind of line: \(line)")
            words.removeFirst()
            if let index = words.firstIndex(of: "XXXX-XXXX-XXXX") { words[index] = try #require(code, "no code printed before \(line)") }
            if words.last == "&" {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = Array(words.dropLast())
                process.currentDirectoryURL = URL(fileURLWithPath: scratch)
                process.environment = environment
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                server = process
                // Wait (not a timed assertion) until it answers, as an operator's next curl would.
                for _ in 0..<200 where try Self.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/healthz"], in: scratch, environment: environment).status != 0 {
                    try await Task.sleep(for: .milliseconds(50))
                }
                continue
            }
            let run = try Self.run(binary, words, in: scratch, environment: environment)
            #expect(run.status == 0, "\(line): \(run.output)")
            if let match = run.output.firstMatch(of: /enrollment code: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})/) { code = String(match.1) }
        }
        let process = try #require(server, "the README starts a server")
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "serve stops cleanly on SIGTERM")
        #expect(code != nil, "admin device add printed a code")
        #expect(FileManager.default.fileExists(atPath: scratch + "/reception-1.sqlite"))
        #expect(FileManager.default.fileExists(atPath: scratch + "/demo-data/.clinic-sync-demo"))
    }
}
