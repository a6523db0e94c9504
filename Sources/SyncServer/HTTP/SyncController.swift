import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SyncCore

/// `POST /v1/enroll` and `POST /v1/sync` over HTTP: a thin adapter over ``SyncEndpoint``, which does the work.
struct SyncController<Store: ServerStore>: Sendable {
    let endpoint: SyncEndpoint<Store>
    let rateLimiter: DeviceRateLimiter?

    init(store: Store, limits: SyncLimits, metrics: ServerMetrics, rateLimiter: DeviceRateLimiter? = nil) {
        endpoint = SyncEndpoint(store: store, limits: limits, metrics: metrics)
        self.rateLimiter = rateLimiter
    }

    func addRoutes(to router: Router<SyncRequestContext>) {
        router.post("/v1/enroll", use: enroll)
        router.group("/v1/sync")
            .add(middleware: EndpointAuthenticator(endpoint: endpoint, rateLimiter: rateLimiter))
            .post(use: sync)
    }

    @Sendable func enroll(_ request: Request, context: SyncRequestContext) async throws -> Response {
        try endpoint.requireDeflate(request.headers[.contentEncoding])
        let body = try await collect(request)
        return Self.response(try await endpoint.enroll(compressed: body, logger: context.logger))
    }

    @Sendable func sync(_ request: Request, context: SyncRequestContext) async throws -> Response {
        guard let device = context.device else { throw Problem(.unauthorized, "missing_token", "no device") }
        try endpoint.requireDeflate(request.headers[.contentEncoding])
        let body = try await collect(request)
        var headers: [String: String] = [:]
        for name in [ProtocolHeader.acknowledged, ProtocolHeader.pending, ProtocolHeader.appVersion, ProtocolHeader.rotateToken] {
            if let field = HTTPField.Name(name), let value = request.headers[field] { headers[name] = value }
        }
        let evidence = SyncEndpoint<Store>.evidence(headers)
        return Self.response(try await endpoint.sync(device, compressed: body, evidence: evidence, logger: context.logger))
    }

    /// Collects at most the compressed limit (SPEC 8.3 step 5, enforced while the body is read).
    private func collect(_ request: Request) async throws -> [UInt8] {
        do {
            return Array(try await request.body.collect(upTo: endpoint.limits.inflate.maxCompressedBytes).readableBytesView)
        } catch {
            throw Problem(.contentTooLarge, CompressionError.Code.compressedTooLarge.rawValue,
                          "the body is larger than \(endpoint.limits.inflate.maxCompressedBytes) bytes")
        }
    }

    private static func response(_ response: EndpointResponse) -> Response {
        var headers: HTTPFields = [.contentType: response.contentType]
        if let encoding = response.contentEncoding { headers[.contentEncoding] = encoding }
        for (name, value) in response.headers {
            if let name = HTTPField.Name(name) { headers[name] = value }
        }
        return Response(status: .init(code: response.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: response.body)))
    }
}

/// Resolves `Authorization: Bearer <token>` to a device (through ``SyncEndpoint``) before anything reads the body,
/// then charges the device's request budget: a device over it is refused before its body costs anything.
struct EndpointAuthenticator<Store: ServerStore>: RouterMiddleware {
    typealias Context = SyncRequestContext
    let endpoint: SyncEndpoint<Store>
    let rateLimiter: DeviceRateLimiter?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let device = try await endpoint.authenticate(authorization: request.headers[.authorization])
        if let wait = rateLimiter?.admit(device.id) {
            // Debug only: a flooding device would otherwise flood the log too; /metrics counts every refusal.
            context.logger.debug("rate limited", metadata: ["device": .string(device.id), "retry_after_s": .stringConvertible(wait)])
            throw Problem.rateLimited(retryAfter: wait)
        }
        var context = context
        context.device = device
        context.logger[metadataKey: "device"] = .string(device.id)
        context.logger[metadataKey: "branch"] = .string(device.branch)
        return try await next(request, context)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
