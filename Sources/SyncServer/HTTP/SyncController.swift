import Foundation
import Hummingbird
import Logging
import SyncCore

/// `POST /v1/enroll` and `POST /v1/sync`.
struct SyncController<Store: ServerStore>: Sendable {
    let store: Store
    let limits: SyncLimits
    let metrics: ServerMetrics

    static var frameContentType: String { "application/vnd.clinicsync.frame" }

    func addRoutes(to router: Router<SyncRequestContext>) {
        router.post("/v1/enroll", use: enroll)
        router.group("/v1/sync")
            .add(middleware: DeviceAuthenticator(store: store))
            .post(use: sync)
    }

    @Sendable func enroll(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let frame = try await readFrame(request, context: context, as: EnrollRequest.self)
        var generator = SystemRandomNumberGenerator()
        let token = Credentials.makeToken(using: &generator)
        let (device, clock) = try await mapStoreErrors {
            try await store.enroll(codeHash: Credentials.hash(Credentials.normalizedCode(frame.code)), deviceName: frame.deviceName,
                                   tokenHash: Credentials.hash(token))
        }
        context.logger.info("device enrolled", metadata: ["device": .string(device.id), "branch": .string(device.branch)])
        let response = EnrollResponse(token: token, replica: device.replica!, branch: device.branch, role: device.role, clock: clock)
        return frameResponse(FrameCodec.encode(response))
    }

    @Sendable func sync(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        guard let device = context.device else { throw Problem(.unauthorized, "missing_token", "no device") }
        let frame = try await readFrame(request, context: context, as: SyncRequest.self)
        let outcome = try await mapStoreErrors { try await store.sync(frame, from: device, limits: limits) }
        metrics.accepted.increment(by: Int64(outcome.accepted))
        metrics.rejected.increment(by: Int64(outcome.rejected))
        metrics.conflicts.increment(by: Int64(outcome.conflicts))
        let body = FrameCodec.encode(outcome.response)
        let response = frameResponse(body)
        metrics.syncLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        context.logger.debug("sync", metadata: [
            "pushed": .stringConvertible(frame.changes.count), "accepted": .stringConvertible(outcome.accepted),
            "rejected": .stringConvertible(outcome.rejected), "conflicts": .stringConvertible(outcome.conflicts),
            "pulled": .stringConvertible(outcome.response.changes.count), "cursor": .stringConvertible(outcome.response.cursor),
        ])
        return response
    }

    /// Collects at most the compressed limit, inflates under the limits, decodes one frame of type `T`.
    private func readFrame<T>(_ request: Request, context: SyncRequestContext, as type: T.Type) async throws -> T {
        guard request.headers[.contentEncoding]?.lowercased() == "deflate" else {
            throw Problem(.unsupportedMediaType, "unsupported_encoding", "bodies must be zlib-deflated with `Content-Encoding: deflate`")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limits.inflate.maxCompressedBytes)
        } catch {
            throw Problem(.contentTooLarge, CompressionError.Code.compressedTooLarge.rawValue,
                          "the body is larger than \(limits.inflate.maxCompressedBytes) bytes")
        }
        let compressed = Array(buffer.readableBytesView)
        let bytes: [UInt8]
        do {
            bytes = try Deflate.decompress(compressed, limits: limits.inflate)
        } catch {
            context.logger.notice("refused body", metadata: ["problem": .string(error.code.rawValue)])
            throw Problem(error)
        }
        metrics.bytesInCompressed.increment(by: Int64(compressed.count))
        metrics.bytesInInflated.increment(by: Int64(bytes.count))
        do {
            return try FrameCodec.decode(bytes, as: T.self)
        } catch {
            context.logger.notice("refused frame", metadata: ["problem": .string(error.code.rawValue), "offset": .stringConvertible(error.offset)])
            throw Problem(error)
        }
    }

    private func frameResponse(_ body: [UInt8]) -> Response {
        let compressed = Deflate.compress(body)
        metrics.bytesOutInflated.increment(by: Int64(body.count))
        metrics.bytesOutCompressed.increment(by: Int64(compressed.count))
        return Response(
            status: .ok,
            headers: [.contentType: Self.frameContentType, .contentEncoding: "deflate"],
            body: .init(byteBuffer: ByteBuffer(bytes: compressed)))
    }

    private func mapStoreErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            throw Problem(error)
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
