import Crypto
import Foundation
import GRDB
import NIOSSL
import SyncStorage

/// Which server certificates a terminal accepts, kept in the replica's metadata so the daemon uses
/// the same trust as `enroll` without the files it was given.
///
/// - By default, certificates the system's trust store vouches for, with the server's name.
/// - With ``certificateAuthorityPEM``: only certificates that CA issued (the system store is not
///   consulted), with the server's name.
/// - With ``pinnedKeySHA256``: only a certificate whose public key has that hash, whoever signed it
///   (a self-signed one too); another certificate is refused even from the same CA.
public struct ServerTrust: Hashable, Sendable, Codable {
    /// PEM certificates of the CA(s) to trust instead of the system store.
    public var certificateAuthorityPEM: String?
    /// Base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (as HPKP and curl's
    /// `--pinnedpubkey sha256//…` use).
    public var pinnedKeySHA256: String?
    /// Allows `http://` to a host other than loopback: tokens and enquiries then cross the network in clear.
    public var allowsInsecureHTTP: Bool

    public init(certificateAuthorityPEM: String? = nil, pinnedKeySHA256: String? = nil, allowsInsecureHTTP: Bool = false) {
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.pinnedKeySHA256 = pinnedKeySHA256
        self.allowsInsecureHTTP = allowsInsecureHTTP
    }

    /// The system's trust store, HTTPS only beyond loopback.
    public static let system = ServerTrust()

    /// Reads a CA file for `--ca-file`: its PEM is kept, so the file may go away afterwards.
    public static func certificateAuthority(file path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let pem = String(data: data, encoding: .utf8) else {
            throw ReplicaError(.invalidValue, "cannot read the CA file \(path)")
        }
        return pem
    }

    /// Checks the settings and the URL together, so that `enroll` and `repoint` refuse what `sync` would.
    public func validate(server: String) throws {
        _ = try tlsMode(for: server)
    }

    /// What a connection to `server` needs.
    func tlsMode(for server: String) throws(SyncError) -> TLSMode {
        guard let url = URLComponents(string: server), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty
        else {
            throw SyncError(code: .invalidServerSettings, problem: "invalid_url", detail: "'\(server)' is not a server URL such as https://sync.example.org:8443")
        }
        if scheme == "http" {
            guard allowsInsecureHTTP || Self.isLoopback(host: host) else {
                throw SyncError(code: .insecureTransport, problem: "insecure_http", detail: """
                    refusing plain HTTP to \(host): the device token and enquiries would cross the network unencrypted; \
                    use an https:// URL, or --allow-insecure-http (terminal enroll or repoint) if the network itself is trusted
                    """)
            }
            return .plain
        }
        if certificateAuthorityPEM != nil && pinnedKeySHA256 != nil {
            throw SyncError(code: .invalidServerSettings, problem: "conflicting_trust", detail: "give either a CA file or a pinned key hash, not both")
        }
        if let pin = pinnedKeySHA256 {
            return .pinned(try Self.decodePin(pin))
        }
        if let pem = certificateAuthorityPEM {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
            } catch {
                throw SyncError(code: .invalidServerSettings, problem: "invalid_ca", detail: "the CA file holds no usable PEM certificate")
            }
            guard !certificates.isEmpty else {
                throw SyncError(code: .invalidServerSettings, problem: "invalid_ca", detail: "the CA file holds no PEM certificate")
            }
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(certificates)
            return .verified(configuration)
        }
        return .verified(TLSConfiguration.makeClientConfiguration())
    }

    enum TLSMode {
        case plain
        /// Verified by BoringSSL against `trustRoots`, through AsyncHTTPClient.
        case verified(TLSConfiguration)
        /// The SHA-256 of the one public key accepted.
        case pinned([UInt8])
    }

    static func decodePin(_ pin: String) throws(SyncError) -> [UInt8] {
        var text = pin.trimmingCharacters(in: .whitespaces)
        for prefix in ["sha256//", "sha256/"] where text.lowercased().hasPrefix(prefix) { text.removeFirst(prefix.count) }
        guard let bytes = Data(base64Encoded: text), bytes.count == SHA256.byteCount else {
            throw SyncError(code: .invalidServerSettings, problem: "invalid_pin", detail: """
                '\(pin)' is not a base64 SHA-256 key hash (44 characters, as `clinic-sync serve` logs in tls_pin_sha256)
                """)
        }
        return Array(bytes)
    }

    /// Whether `host` names this machine: plain HTTP there never leaves it.
    public static func isLoopback(host: String) -> Bool {
        let host = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

extension Replica {
    /// The trust this replica's syncs use.
    public func serverTrust() throws -> ServerTrust {
        try writer.read { db in try Self.serverTrust(db) }
    }

    static func serverTrust(_ db: Database) throws -> ServerTrust {
        ServerTrust(
            certificateAuthorityPEM: try SyncMeta.get(MetaKey.serverCA, in: db),
            pinnedKeySHA256: try SyncMeta.get(MetaKey.serverPin, in: db),
            allowsInsecureHTTP: (try SyncMeta.get(MetaKey.allowInsecureHTTP, in: db) as Int64?) == 1)
    }

    static func setServerTrust(_ trust: ServerTrust, in db: Database) throws {
        try SyncMeta.set(MetaKey.serverCA, trust.certificateAuthorityPEM, in: db)
        try SyncMeta.set(MetaKey.serverPin, trust.pinnedKeySHA256, in: db)
        try SyncMeta.set(MetaKey.allowInsecureHTTP, trust.allowsInsecureHTTP ? 1 : 0, in: db)
    }
}

extension HTTPTransport {
    /// The transport to this replica's server, with the trust it was enrolled with.
    public static func forReplica(_ replica: Replica) throws -> HTTPTransport {
        guard let identity = try replica.identity() else { throw ReplicaError.notEnrolled }
        return HTTPTransport(baseURL: identity.server, trust: try replica.serverTrust())
    }
}
