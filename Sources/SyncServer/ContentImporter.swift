import Foundation
import SyncCore

/// Reads content files — Markdown with a front-matter block of `key: value` lines — into server writes.
public enum ContentImporter {
    /// A content file that could not be read; names the file and line, never its text.
    public struct ImportError: Error, CustomStringConvertible {
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// One parsed content file.
    public struct Item: Sendable {
        public var id: String
        public var cells: [CellWrite]

        /// The branch the item is limited to; nil for every branch.
        public var branch: String? {
            cells.first { $0.column == Columns.Content.branch }?.value.text
        }
    }

    /// Reads a branches file: a JSON array of `{"id", "name", "address", "phone"}` (fixtures/branches.json).
    public static func branches(at path: String) throws -> [BranchInfo] {
        do {
            return try JSONDecoder().decode([BranchInfo].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch let error as DecodingError {
            throw ImportError(file: path, reason: "not a JSON array of branches with id and name (\(error.localizedDescription))")
        }
    }

    /// Parses every `.md` file at `path` (a file or a folder), sorted by name.
    public static func items(at path: String) throws -> [Item] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImportError(file: path, reason: "no such file or folder")
        }
        let files = isDirectory.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".md") && $0 != "README.md" }.sorted()
                .map { (path as NSString).appendingPathComponent($0) }
            : [path]
        return try files.map { file in
            try parse(String(contentsOfFile: file, encoding: .utf8), file: (file as NSString).lastPathComponent)
        }
    }

    /// Parses one file's text.
    public static func parse(_ text: String, file: String) throws -> Item {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first?.trimmingCharacters(in: .whitespaces) == "---",
              let end = lines.dropFirst().firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "---" })
        else { throw ImportError(file: file, reason: "missing the front-matter block between '---' lines") }
        var fields: [String: String] = [:]
        for (offset, line) in lines[1..<end].enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let colon = line.firstIndex(of: ":") else {
                throw ImportError(file: file, reason: "line \(offset + 2) is not `key: value`")
            }
            fields[String(line[..<colon]).trimmingCharacters(in: .whitespaces)] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        let body = lines[(end + 1)...].joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        guard let slug = fields["slug"] ?? fields["id"], !slug.isEmpty else { throw ImportError(file: file, reason: "front matter needs `slug`") }
        let id = fields["id"] ?? slug
        let kind = fields["kind"] ?? "page"
        guard Schema.contentKinds.contains(kind) else {
            throw ImportError(file: file, reason: "kind '\(kind)' is not one of \(Schema.contentKinds.joined(separator: ", "))")
        }
        guard let title = fields["title"], !title.isEmpty else { throw ImportError(file: file, reason: "front matter needs `title`") }
        let published: Int64 = ["false", "no", "0"].contains(fields["published"]?.lowercased() ?? "true") ? 0 : 1
        var position: Value = .null
        if let text = fields["position"] {
            guard let number = Int64(text) else { throw ImportError(file: file, reason: "position '\(text)' is not a number") }
            position = .integer(number)
        }
        let cells: [(ColumnID, Value)] = [
            (Columns.Content.kind, .text(kind)), (Columns.Content.slug, .text(slug)), (Columns.Content.title, .text(title)),
            (Columns.Content.summary, fields["summary"].value), (Columns.Content.body, .text(body)), (Columns.Content.tags, fields["tags"].value),
            (Columns.Content.published, .integer(published)), (Columns.Content.position, position),
            (Columns.Content.branch, fields["branch"].flatMap { $0.isEmpty ? nil : $0 }.value),
        ]
        return Item(id: id, cells: cells.map { CellWrite(.content, id, $0.0, $0.1) })
    }
}
