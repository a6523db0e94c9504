import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Turns a failure below HTTP into an ``SyncError/Code/offline`` error that says what happened and
/// where, e.g. "connection refused by 127.0.0.1:8080 (is the server running?)", with a stable
/// `problem` code for scripts.
enum ConnectionFailure {
    /// A TLS failure as its own error (never "offline": waiting does not fix a certificate), anything
    /// else as ``offline(_:baseURL:)``.
    static func classify(_ error: any Error, baseURL: String, trust: ServerTrust) -> SyncError {
        tls(error, baseURL: baseURL, trust: trust) ?? offline(error, baseURL: baseURL)
    }

    static func tls(_ error: any Error, baseURL: String, trust: ServerTrust) -> SyncError? {
        let components = URLComponents(string: baseURL)
        let address = "\(components?.host ?? baseURL):\(components?.port ?? 443)"
        if let mismatch = error as? PinMismatch {
            return SyncError(code: .untrustedServerCertificate, problem: "pin_mismatch", detail: """
                \(address) showed a certificate whose key hash is \(mismatch.presented), not the pinned \(mismatch.pinned); \
                if the server's key changed on purpose, pin the new one with `clinic-sync terminal repoint --pin-sha256`
                """)
        }
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return SyncError(code: .untrustedServerCertificate, problem: "certificate_name_mismatch", detail: """
                the certificate of \(address) is not for \(components?.host ?? "that name"); check the server URL
                """)
        }
        if case .handshakeFailed(let failure)? = error as? NIOSSLError {
            let reason = "\(failure)"
            if reason.contains("CERTIFICATE_VERIFY_FAILED") {
                let trusted = trust.certificateAuthorityPEM != nil ? "the CA given at enrollment" : "the system's trust store"
                return SyncError(code: .untrustedServerCertificate, problem: "untrusted_server_certificate", detail: """
                    the certificate of \(address) is not vouched for by \(trusted), or has expired; to trust the server's CA or \
                    key, give --ca-file or --pin-sha256 to `clinic-sync terminal enroll` or `terminal repoint`
                    """)
            }
            let hint = reason.contains("WRONG_VERSION_NUMBER") ? " (does the server serve plain HTTP? then the URL is http://)" : ""
            return SyncError(code: .tlsFailed, problem: "tls_handshake_failed", detail: "the TLS handshake with \(address) failed\(hint)")
        }
        return nil
    }

    static func offline(_ error: any Error, baseURL: String) -> SyncError {
        let components = URLComponents(string: baseURL)
        let host = components?.host ?? baseURL
        let port = components?.port ?? (components?.scheme == "https" ? 443 : 80)
        let address = "\(host):\(port)"
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .connectTimeout {
            return SyncError(code: .offline, problem: "timeout", detail: "\(address) did not answer in time")
        }
        if let connection = error as? NIOConnectionError {
            if connection.dnsAError != nil || connection.dnsAAAAError != nil, connection.connectionErrors.isEmpty {
                return SyncError(code: .offline, problem: "unknown_host", detail: "cannot resolve \(host)")
            }
            if let underlying = connection.connectionErrors.lazy.compactMap({ $0.error as? IOError }).first {
                return offline(errno: underlying.errnoCode, address: address)
            }
        }
        if let error = error as? IOError { return offline(errno: error.errnoCode, address: address) }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return SyncError(code: .offline, problem: "timeout", detail: "\(address) did not answer in time")
        }
        return SyncError(code: .offline, problem: "unreachable", detail: "cannot reach \(address) (\(type(of: error)))")
    }

    static func offline(errno code: Int32, address: String) -> SyncError {
        switch code {
        case ECONNREFUSED:
            SyncError(code: .offline, problem: "connection_refused", detail: "connection refused by \(address) (is the server running?)")
        case ECONNRESET, EPIPE:
            SyncError(code: .offline, problem: "connection_reset", detail: "connection reset by \(address)")
        case ETIMEDOUT:
            SyncError(code: .offline, problem: "timeout", detail: "\(address) did not answer in time")
        case EHOSTUNREACH, ENETUNREACH, ENETDOWN:
            SyncError(code: .offline, problem: "unreachable", detail: "no route to \(address) (network down?)")
        default:
            SyncError(code: .offline, problem: "unreachable", detail: "cannot reach \(address): \(String(cString: strerror(code)))")
        }
    }
}
