import Foundation

/// Files and folders that hold patient data: owner-only from the first byte, on both sides.
///
/// SQLite creates a database's `-wal` and `-shm` files with the database file's own mode, so creating
/// the database file 0600 before SQLite opens it covers all three.
package enum PrivateFiles {
    /// Owner read/write.
    package static let fileMode: Int16 = 0o600
    /// Owner read/write/search.
    package static let directoryMode: Int16 = 0o700

    /// Creates `path` and any missing parents, owner-only. An existing folder is left as it is.
    package static func createDirectory(_ path: String) throws {
        guard !path.isEmpty, !FileManager.default.fileExists(atPath: path) else { return }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: directoryMode])
    }

    /// Creates an empty owner-only file at `path` unless one exists.
    package static func createFile(_ path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: fileMode]) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
    }

    /// The existing paths among `paths` that someone other than the owner may read, write or enter,
    /// each with its mode, e.g. `("srv/server.sqlite", 0o644)`.
    package static func looserThanOwnerOnly(_ paths: [String]) -> [(path: String, mode: Int16)] {
        paths.compactMap { path in
            guard let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber else { return nil }
            return mode.int16Value & 0o077 == 0 ? nil : (path, mode.int16Value & 0o777)
        }
    }
}
