import Foundation

/// Every erasure the store committed, kept outside the store (`erasures.log` in the data folder), so a
/// restore of a backup taken before an erasure replays it: an erased enquiry stays erased (UK GDPR).
///
/// One JSON line per erased row: the table, the row id and the branch — ids, never patient text.
/// Appended and fsynced once the write that erased the row has committed. A crash between the two loses the line,
/// but not the erasure itself; the terminal that asked for it re-sends it after a restore (SPEC 7.9).
public struct ErasureLedger: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        public var table: String
        public var row: String
        public var branch: String
        public var erasedAt: Date

        enum CodingKeys: String, CodingKey {
            case table, row, branch
            case erasedAt = "erased_at"
        }
    }

    public static let fileName = "erasures.log"
    public let path: String

    public init(directory: String) {
        path = (directory as NSString).appendingPathComponent(Self.fileName)
    }

    /// Appends `entries` and waits for them to reach the disk.
    func append(_ entries: [Entry]) throws {
        guard !entries.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        var bytes = Data()
        for entry in entries {
            bytes += try encoder.encode(entry)
            bytes.append(0x0A)
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            throw BackupError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Every entry, oldest first. A torn last line (a crash mid-append) is skipped; nothing else is.
    public func entries() throws -> [Entry] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let lines = data.split(separator: 0x0A)
        var entries: [Entry] = []
        for (index, line) in lines.enumerated() {
            do {
                entries.append(try decoder.decode(Entry.self, from: Data(line)))
            } catch where index == lines.count - 1 && data.last != 0x0A {
                break
            } catch {
                throw BackupError("\(path) line \(index + 1) is not an erasure record; fix or move the file and retry")
            }
        }
        return entries
    }
}

extension SQLiteServerStore {
    /// Writes committed erasures to the ledger. A failure is kept for `/healthz`: the erasure itself is
    /// stored, only its copy for restores is missing.
    func appendToLedger(_ entries: [ErasureLedger.Entry]) {
        guard let ledger, !entries.isEmpty else { return }
        do { try ledger.append(entries) } catch { condition.ledgerFailure = String(describing: error) }
    }
}
