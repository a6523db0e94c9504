import Hummingbird
import Logging

/// The request context: the authenticated device travels from the middleware to the handler.
public struct SyncRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``EndpointAuthenticator`` for authenticated routes.
    public var device: Device?
    /// Bodies are bounded by the compressed-body limit; the handler collects with `upTo:` itself.
    public var maxUploadSize: Int { 64 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        device = nil
    }
}
