import Hummingbird
import Logging
import NIOCore

/// The request context: the authenticated device travels from the middleware to the handler.
public struct SyncRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``EndpointAuthenticator`` for authenticated routes.
    public var device: Device?
    /// The peer's address, for ``MetricsAccess``; nil when the request did not come over a network.
    public var peer: SocketAddress?
    /// Bodies are bounded by the compressed-body limit; the handler collects with `upTo:` itself.
    public var maxUploadSize: Int { 64 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        device = nil
        peer = source.channel.remoteAddress
    }
}
