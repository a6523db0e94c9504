import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

/// Turns a failure below HTTP into an ``SyncError/Code/offline`` error that says what happened and
/// where, e.g. "connection refused by 127.0.0.1:8080 (is the server running?)", with a stable
/// `problem` code for scripts.
enum ConnectionFailure {
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
