import Crypto
import Foundation
import NIOCore

/// Who may read `/metrics` (issue 13): it names no patient, but counts of devices, conflicts and
/// refusals still tell an outsider about the clinic. With a token configured, any peer that sends it
/// (`Authorization: Bearer …`, so a Prometheus scraper on another machine works); without one, only
/// this machine.
public struct MetricsAccess: Sendable, Equatable {
    /// SHA-256 of the token; nil: loopback only.
    let tokenHash: [UInt8]?

    public static let loopbackOnly = MetricsAccess(tokenHash: nil)

    public static func token(_ token: String) -> MetricsAccess {
        MetricsAccess(tokenHash: Array(SHA256.hash(data: Data(token.utf8))))
    }

    /// Whether a request from `peer` (nil: not over a network, as in in-process tests) with this
    /// `Authorization` header may read the metrics.
    func allows(peer: SocketAddress?, authorization: String?) -> Bool {
        guard let tokenHash else { return peer.map(Self.isLoopback) ?? true }
        guard let authorization, authorization.hasPrefix("Bearer ") else { return false }
        let offered = Array(SHA256.hash(data: Data(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)))
        // Equal-length digests compared without an early exit.
        return zip(offered, tokenHash).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .unixDomainSocket: return true
        case .v4(let v4): return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6(let v6):
            var loopback = in6addr_loopback
            var mappedLocal = false
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            // ::ffff:127.x.y.z, an IPv4 loopback peer on a dual-stack socket.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127 { mappedLocal = true }
            return mappedLocal || withUnsafeBytes(of: &loopback) { Array($0) } == bytes
        }
    }
}
