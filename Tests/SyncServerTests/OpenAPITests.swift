import Foundation
import Hummingbird
import SyncCore
import Testing
@testable import SyncServer

/// protocol/openapi.yaml against the code. Both lists come from the code, never from a list kept here:
/// the routes from the router the server runs, the problem codes from the sources. A route or code the
/// document lacks fails, and so does one it names that the code no longer has.
@Suite("OpenAPI document")
struct OpenAPITests {
    /// The repository root: this file is Tests/SyncServerTests/OpenAPITests.swift.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyRouteIsDocumented() async throws {
        let server = try await TestServer()
        // The very router `buildApplication` serves, asked for its own route table.
        let router = buildRouter(server.configuration, store: server.store, metrics: server.metrics)
        var served: [String: Set<String>] = [:]
        for route in router.routes {
            served[route.path.description, default: []].insert(route.method.rawValue.lowercased())
        }
        try #require(!served.isEmpty, "the router lists no routes")
        let documented = try OpenAPIDocument.load().operations
        try #require(!documented.isEmpty, "found no `  /path:` under `paths:` in \(OpenAPIDocument.url.path)")
        for (path, methods) in served.sorted(by: { $0.key < $1.key }) {
            for method in methods.sorted() {
                #expect(documented[path]?.contains(method) == true, "\(method.uppercased()) \(path) is served but missing from protocol/openapi.yaml")
            }
        }
        for (path, methods) in documented.sorted(by: { $0.key < $1.key }) {
            for method in methods.sorted() {
                #expect(served[path]?.contains(method) == true, "protocol/openapi.yaml documents \(method.uppercased()) \(path), which the router does not serve")
            }
        }
    }

    @Test func everyProblemCodeIsDocumented() throws {
        let scan = try ProblemCodeScan(sources: Self.root.appending(path: "Sources"))
        #expect(scan.unrecognized.isEmpty, """
            cannot tell which code these make; give them a literal code or a `T.Code` case, or teach ProblemCodeScan the new shape:
            \(scan.unrecognized.joined(separator: "\n"))
            """)
        try #require(!scan.codes.isEmpty, "found no problem codes in the sources")
        let documented = try OpenAPIDocument.load().problemCodes
        try #require(!documented.isEmpty, "found no `enum:` items under `    ProblemCode:` in \(OpenAPIDocument.url.path)")
        for (code, origin) in scan.codes.sorted(by: { $0.key < $1.key }) {
            #expect(documented.contains(code), "problem code `\(code)` (\(origin)) is missing from ProblemCode in protocol/openapi.yaml")
        }
        for code in documented.sorted() {
            #expect(scan.codes[code] != nil, "protocol/openapi.yaml lists problem code `\(code)`, which no code makes")
        }
    }

    /// The scan reads enum raw values as text; the compiled enums must know each one, so a misread
    /// shows here instead of passing unnoticed. (This list only checks the reader: the codes come from the scan.)
    @Test func theScanReadsTheCompiledCodeEnums() throws {
        let scan = try ProblemCodeScan(sources: Self.root.appending(path: "Sources"))
        let compiled: [String: (String) -> Bool] = [
            "FrameError": { FrameError.Code(rawValue: $0) != nil },
            "CompressionError": { CompressionError.Code(rawValue: $0) != nil },
            "StoreError": { StoreError.Code(rawValue: $0) != nil },
        ]
        for (type, isCase) in compiled.sorted(by: { $0.key < $1.key }) {
            let raws = scan.enumCodes[type] ?? []
            #expect(!raws.isEmpty, "read no `\(type).Code` cases")
            for raw in raws {
                #expect(isCase(raw), "read `\(raw)` as a \(type).Code raw value, which it is not")
            }
        }
    }
}

/// Every problem code the sources can put in a `Problem`, read from the text of Sources/:
/// - the code argument of each `Problem(status, code, detail)` call (and `self.init` inside Problem):
///   a string literal, or `T.Code.name.rawValue`;
/// - every raw value of `T.Code` for each `T` that Problem converts with an `init(_: T)`.
/// A call of any other shape lands in `unrecognized`, so a new way of making a code fails the test
/// until this learns it, rather than slipping past.
struct ProblemCodeScan {
    /// Each code, and where it was found (for failure messages).
    let codes: [String: String]
    /// The raw values read from each converted or referenced type's `Code` enum.
    let enumCodes: [String: [String]]
    let unrecognized: [String]

    init(sources: URL) throws {
        let files = try Self.swiftFiles(in: sources)
        var codes: [String: String] = [:]
        var unrecognized: [String] = []
        let literal = try Regex(#"\s*[^,()"]+,\s*"([A-Za-z0-9_]+)"\s*,"#)
        let member = try Regex(#"\s*[^,()"]+,\s*(\w+)\.Code\.(\w+)\.rawValue\s*,"#)
        let conversion = try Regex(#"\s*\w+\s*\)"#)
        let forwarded = try Regex(#"\s*[^,()"]+,\s*\w+\.code\.rawValue\s*,"#)
        let converter = try Regex(#"init\(_ \w+: (\w+)\)"#)
        var referenced: [(type: String, name: String, origin: String)] = []
        var converted: [(type: String, origin: String)] = []

        func read(_ call: Substring, origin: String, selfInit: Bool) {
            if let match = call.prefixMatch(of: literal), let code = match.output[1].substring {
                if codes[String(code)] == nil { codes[String(code)] = origin }
            } else if let match = call.prefixMatch(of: member), let type = match.output[1].substring, let name = match.output[2].substring {
                referenced.append((String(type), String(name), origin))
            } else if !selfInit, call.prefixMatch(of: conversion) != nil {
                // `Problem(error)`: one of the converting initialisers below, whose enums are read whole.
            } else if selfInit, call.prefixMatch(of: forwarded) != nil {
                // `self.init(status, error.code.rawValue, …)` inside a converting initialiser: likewise.
            } else {
                unrecognized.append("\(origin): Problem(\(call.prefix { $0 != "\n" }.prefix(80))")
            }
        }

        for file in files {
            let text = file.text[...]
            for range in text.ranges(of: "Problem(") {
                // Only the type itself: not `ServerProblem(` or `.Problem(`.
                if range.lowerBound > text.startIndex {
                    let before = text[text.index(before: range.lowerBound)]
                    if before.isLetter || before.isNumber || before == "_" || before == "." { continue }
                }
                read(text[range.upperBound...], origin: file.origin(of: range.lowerBound), selfInit: false)
            }
            for declaration in text.matches(of: try Regex(#"(struct|extension)\s+Problem[\s:{]"#)) {
                guard let body = Self.body(after: declaration.range.lowerBound, in: text) else { continue }
                for match in body.matches(of: converter) {
                    if let type = match.output[1].substring { converted.append((String(type), file.origin(of: match.range.lowerBound))) }
                }
                for range in body.ranges(of: "self.init(") {
                    read(text[range.upperBound...], origin: file.origin(of: range.lowerBound), selfInit: true)
                }
            }
        }

        var enumCodes: [String: [String]] = [:]
        for (type, origin) in converted {
            guard let raws = try Self.codeEnum(of: type, in: files) else {
                unrecognized.append("\(origin): Problem converts \(type), which has no `enum Code: String` to read")
                continue
            }
            enumCodes[type] = raws
            for raw in raws where codes[raw] == nil { codes[raw] = "\(type).Code, converted at \(origin)" }
        }
        for (type, name, origin) in referenced {
            guard let cases = try Self.codeEnumCases(of: type, in: files), let raw = cases.first(where: { $0.name == name })?.raw else {
                unrecognized.append("\(origin): cannot find \(type).Code.\(name)")
                continue
            }
            if enumCodes[type] == nil { enumCodes[type] = cases.map(\.raw) }
            if codes[raw] == nil { codes[raw] = "\(type).Code.\(name) at \(origin)" }
        }
        self.codes = codes
        self.enumCodes = enumCodes
        self.unrecognized = unrecognized
    }

    struct SourceFile {
        let path: String
        /// The text with whole-line comments blanked, so that prose in doc comments is not read as code.
        let text: String

        func origin(of index: String.Index) -> String {
            "\(path):\(text[..<index].count(where: { $0 == "\n" }) + 1)"
        }
    }

    static func swiftFiles(in directory: URL) throws -> [SourceFile] {
        guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        var files: [SourceFile] = []
        while let url = enumerator.nextObject() as? URL {
            guard url.pathExtension == "swift" else { continue }
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map { line in
                line.trimmingCharacters(in: .whitespaces).hasPrefix("//") ? "" : String(line)
            }
            let relative = url.path.hasPrefix(directory.path) ? "Sources" + url.path.dropFirst(directory.path.count) : url.path
            files.append(SourceFile(path: relative, text: lines.joined(separator: "\n")))
        }
        return files.sorted { $0.path < $1.path }
    }

    /// The raw values of `type.Code`, or nil when the sources declare no such `enum Code: String`.
    static func codeEnum(of type: String, in files: [SourceFile]) throws -> [String]? {
        try codeEnumCases(of: type, in: files)?.map(\.raw)
    }

    static func codeEnumCases(of type: String, in files: [SourceFile]) throws -> [(name: String, raw: String)]? {
        let declaration = try Regex(#"(struct|enum|class|actor)\s+"# + type + #"[\s:{<]"#)
        let codeEnum = try Regex(#"enum\s+Code\s*:\s*String"#)
        for file in files {
            let text = file.text[...]
            for match in text.matches(of: declaration) {
                guard let body = Self.body(after: match.range.lowerBound, in: text),
                      let enumStart = body.firstMatch(of: codeEnum),
                      let cases = Self.body(after: enumStart.range.lowerBound, in: body)
                else { continue }
                // `case a = "x", b` → (a, x), (b, b): an unassigned raw value is the case's name.
                return cases.split(separator: "\n").flatMap { line -> [(name: String, raw: String)] in
                    let declaration = line.components(separatedBy: "//")[0].trimmingCharacters(in: .whitespaces)
                    guard declaration.hasPrefix("case ") else { return [] }
                    return declaration.dropFirst(5).split(separator: ",").map { item -> (name: String, raw: String) in
                        let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                        let raw = parts.count == 2 ? parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) : parts[0]
                        return (name: parts[0], raw: raw)
                    }
                }
            }
        }
        return nil
    }

    /// What lies between the first `{` at or after `index` and its matching `}`; braces inside string
    /// literals are skipped.
    static func body(after index: Substring.Index, in text: Substring) -> Substring? {
        guard let open = text[index...].firstIndex(of: "{") else { return nil }
        var depth = 0
        var inString = false
        var escaped = false
        var position = open
        while position < text.endIndex {
            let character = text[position]
            if inString {
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
            } else if character == "\"" {
                inString = true
            } else if character == "{" {
                depth += 1
            } else if character == "}" {
                depth -= 1
                if depth == 0 { return text[text.index(after: open)..<position] }
            }
            position = text.index(after: position)
        }
        return nil
    }
}

/// The little of protocol/openapi.yaml these tests need, read line by line (no YAML dependency):
/// an operation is a `    method:` line beneath a `  /path:` line under `paths:`; the problem codes are
/// the items of the `enum:` directly under `    ProblemCode:`.
struct OpenAPIDocument {
    static var url: URL { OpenAPITests.root.appending(path: "protocol/openapi.yaml") }

    /// Path → lower-case methods.
    var operations: [String: Set<String>] = [:]
    var problemCodes: [String] = []

    static func load() throws -> OpenAPIDocument {
        OpenAPIDocument(try String(contentsOf: url, encoding: .utf8))
    }

    init(_ text: String) {
        let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
        var inPaths = false
        var path: String?
        var inProblemCode = false
        var enumIndent: Int?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let indent = line.prefix { $0 == " " }.count
            let key: String? = trimmed.hasSuffix(":") ? Self.unquoted(trimmed.dropLast()) : nil

            if indent == 0 { inPaths = trimmed == "paths:" }
            if inPaths, indent == 2 { path = key.flatMap { $0.hasPrefix("/") ? $0 : nil } }
            if inPaths, indent == 4, let path, let key, methods.contains(key) { operations[path, default: []].insert(key) }

            if indent <= 4 { inProblemCode = indent == 4 && trimmed == "ProblemCode:" }
            if let current = enumIndent {
                if trimmed.hasPrefix("- "), indent >= current {
                    problemCodes.append(Self.unquoted(trimmed.dropFirst(2)))
                    continue
                }
                enumIndent = nil
            }
            if inProblemCode, indent == 6 {
                if trimmed == "enum:" {
                    enumIndent = indent
                } else if trimmed.hasPrefix("enum: ["), trimmed.hasSuffix("]") {
                    problemCodes += trimmed.dropFirst(7).dropLast().split(separator: ",").map { Self.unquoted($0) }
                }
            }
        }
    }

    static func unquoted(_ text: some StringProtocol) -> String {
        text.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
    }
}
