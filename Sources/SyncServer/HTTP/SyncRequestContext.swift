import Hummingbird
import Logging

/// The request context: the authenticated device travels from the middleware to the handler.
public struct SyncRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``DeviceAuthenticator`` for authenticated routes.
    public var device: Device?
    /// Bodies are bounded by the compressed-body limit; the handler collects with `upTo:` itself.
    public var maxUploadSize: Int { 64 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        device = nil
    }
}

/// Resolves `Authorization: Bearer <token>` to a device before anything reads the body.
struct DeviceAuthenticator<Store: ServerStore>: RouterMiddleware {
    typealias Context = SyncRequestContext
    let store: Store

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), header.count > 7 else {
            throw Problem(.unauthorized, "missing_token", "send `Authorization: Bearer <device token>`; enroll the terminal to get one")
        }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard let device = try await store.device(tokenHash: Credentials.hash(token)) else {
            throw Problem(.unauthorized, "unknown_token", "this device token is not known to the server; enroll again")
        }
        guard !device.isRevoked else {
            throw Problem(.unauthorized, "revoked_token", "this device was revoked; ask an admin for a new enrollment code")
        }
        var context = context
        context.device = device
        context.logger[metadataKey: "device"] = .string(device.id)
        context.logger[metadataKey: "branch"] = .string(device.branch)
        return try await next(request, context)
    }
}
