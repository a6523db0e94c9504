import Crypto
import Foundation
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// Why the server's certificate or key could not be used. Says which file and what to do; never
/// quotes the key.
public struct ServerTLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The server's certificate and key, re-read on demand (SIGHUP) without a restart.
///
/// Each new connection takes the context current when it is accepted, so a reload changes what new
/// connections see and leaves open ones alone; a certificate or key that cannot be used leaves the
/// previous pair in place.
public final class ServerTLS: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let loaded: NIOLockedValueBox<Loaded>

    struct Loaded {
        var context: NIOSSLContext
        var pin: String
    }

    /// Loads the PEM certificate chain (server certificate first) and its private key.
    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        loaded = NIOLockedValueBox(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The context new connections use.
    var context: NIOSSLContext { loaded.withLockedValue { $0.context } }

    /// The SHA-256 of the server certificate's public key (SubjectPublicKeyInfo), base64: what
    /// `terminal enroll --pin-sha256` takes.
    public var pinSHA256: String { loaded.withLockedValue { $0.pin } }

    /// Re-reads both files. On failure the previous certificate stays in use and the error says why.
    /// Returns the new certificate's pin.
    @discardableResult
    public func reload() throws -> String {
        let fresh = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        loaded.withLockedValue { $0 = fresh }
        return fresh.pin
    }

    static func load(certificatePath: String, keyPath: String) throws -> Loaded {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw ServerTLSError("cannot read the TLS certificate \(certificatePath): \(Self.reason(error, path: certificatePath, expecting: "a PEM certificate"))")
        }
        guard let leaf = chain.first else {
            throw ServerTLSError("the TLS certificate file \(certificatePath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw ServerTLSError("cannot read the TLS private key \(keyPath): \(Self.reason(error, path: keyPath, expecting: "an unencrypted PEM private key"))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // Closing, NIOSSL waits this long for the peer's close_notify. Idle pooled client connections may
        // never send one, which held every graceful stop for the default 5 s; HTTP bodies here are
        // length-delimited, so the server loses nothing by not waiting.
        configuration.shutdownTimeout = .milliseconds(500)
        let context: NIOSSLContext
        do {
            // BoringSSL refuses a key that does not belong to the chain's first certificate here.
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ServerTLSError("the TLS private key \(keyPath) does not match the certificate \(certificatePath) (or either cannot be used)")
        }
        let pin = Data(SHA256.hash(data: try leaf.extractPublicKey().toSPKIBytes())).base64EncodedString()
        return Loaded(context: context, pin: pin)
    }

    private static func reason(_ error: any Error, path: String, expecting: String) -> String {
        if !FileManager.default.fileExists(atPath: path) { return "no such file" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return "not \(expecting)"
    }
}

/// HTTP/1.1 over TLS whose context is taken per connection from ``ServerTLS``.
///
/// HummingbirdTLS's `TLSChannel` builds its `NIOSSLContext` once, when the server is built, so a
/// new certificate would need a restart that drops every open connection. This does what it does
/// (a `NIOSSLServerHandler` in front of the HTTP channel) with the context read at accept time.
struct ReloadableTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let tls: ServerTLS

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = tls.context
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ReloadableTLSChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS with a certificate that ``ServerTLS/reload()`` can replace.
    static func reloadableTLS(_ tls: ServerTLS) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in ReloadableTLSChannel(base: HTTP1Channel(responder: responder), tls: tls) }
    }
}
