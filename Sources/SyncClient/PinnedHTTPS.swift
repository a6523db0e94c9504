import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SyncCore

/// One HTTPS POST to a server whose certificate must carry a pinned public key.
///
/// Why not AsyncHTTPClient: its `TLSConfiguration` has no verification callback and it builds its
/// `NIOSSLClientHandler` itself, so it cannot check a key hash. Trusting the pinned certificate as a
/// root does not work either: the terminal has only the hash, and BoringSSL (as NIOSSL sets it up)
/// does not accept a trusted certificate that is not self-signed (no partial chains). Checking the
/// key on a separate connection first would leave the request's own connection unchecked. So this
/// opens its own connection and decides in NIOSSL's custom verification callback, before a byte of
/// the request (and its token) is sent. One connection per request (`Connection: close`): a sync is
/// a few round trips, and nothing is pooled that another trust could reuse.
enum PinnedHTTPS {
    /// Bodies in both directions are a few MiB at most (a page deflated).
    static let maxResponseBytes = 64 << 20

    static func post(
        url: URLComponents, path: String, headers: [(String, String)], body: [UInt8], pin: [UInt8], connectTimeout: TimeAmount
    ) async throws -> TransportResponse {
        guard let host = url.host else { throw HTTPClientError.invalidURL }
        let port = url.port ?? 443
        var configuration = TLSConfiguration.makeClientConfiguration()
        // The callback below replaces chain and name checks: the key hash is the whole trust decision.
        configuration.certificateVerification = .noHostnameVerification
        configuration.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        let presented = NIOLockedValueBox<String?>(nil)
        let serverName = ServerTrust.isIPAddress(host) ? nil : host
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(connectTimeout)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: context, serverHostname: serverName) { certificates, promise in
                        guard let leaf = certificates.first, let key = try? leaf.extractPublicKey().toSPKIBytes() else {
                            promise.succeed(.failed)
                            return
                        }
                        let hash = Array(SHA256.hash(data: key))
                        presented.withLockedValue { $0 = Data(hash).base64EncodedString() }
                        promise.succeed(hash == pin ? .certificateVerified : .failed)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        do {
            return try await withTaskCancellationHandler {
                try await exchange(on: channel, host: url.port.map { "\(host):\($0)" } ?? host, path: path, headers: headers, body: body)
            } onCancel: {
                channel.channel.close(promise: nil)
            }
        } catch {
            // The handshake failed in our callback: say which key the server showed, so an operator can
            // tell a renewed certificate (new key) from a wrong server.
            if let shown = presented.withLockedValue({ $0 }), Array(Data(base64Encoded: shown) ?? Data()) != pin {
                throw PinMismatch(presented: shown, pinned: Data(pin).base64EncodedString())
            }
            throw error
        }
    }

    private static func exchange(
        on channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>, host: String, path: String,
        headers: [(String, String)], body: [UInt8]
    ) async throws -> TransportResponse {
        try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            head.headers.add(name: "Host", value: host)
            head.headers.add(name: "Content-Length", value: String(body.count))
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
            var response: HTTPResponseHead?
            var collected = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let received):
                    response = received
                case .body(var chunk):
                    guard collected.readableBytes + chunk.readableBytes <= maxResponseBytes else { throw HTTPClientError.bodyLengthMismatch }
                    collected.writeBuffer(&chunk)
                case .end:
                    guard let response else { throw HTTPClientError.remoteConnectionClosed }
                    var kept: [String: String] = [:]
                    for name in ProtocolHeader.answerHeaders { kept[name] = response.headers.first(name: name) }
                    return TransportResponse(status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                                             body: Array(collected.readableBytesView), headers: kept)
                }
            }
            throw HTTPClientError.remoteConnectionClosed
        }
    }
}

/// The server showed a certificate whose key is not the pinned one.
struct PinMismatch: Error {
    let presented: String
    let pinned: String
}

extension ServerTrust {
    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: 0)) != nil
    }
}
