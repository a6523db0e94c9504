import Foundation
import Logging
import SyncCore

/// What ``SyncEndpoint`` answers: the status, headers and body that go on the wire, whatever carries them.
public struct EndpointResponse: Hashable, Sendable {
    /// The HTTP status code.
    public var status: Int
    /// `application/vnd.clinicsync.frame` or `application/problem+json`.
    public var contentType: String
    /// `deflate` for frames; nil for problems, which are sent uncompressed.
    public var contentEncoding: String?
    /// The deflated frame, or the problem's JSON.
    public var body: [UInt8]
    /// More headers, by lower-case name: `clinicsync-store-epoch` on sync answers (SPEC 7.9).
    public var headers: [String: String]

    public init(status: Int, contentType: String, contentEncoding: String? = nil, body: [UInt8], headers: [String: String] = [:]) {
        self.status = status
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.body = body
        self.headers = headers
    }
}

/// Where the server draws random bits: replica ids, device ids, tokens, enrollment codes.
/// The system generator in production; the simulator injects a seeded one so runs replay exactly.
public struct RandomSource: RandomNumberGenerator, Sendable {
    private let draw: @Sendable () -> UInt64

    public init(_ draw: @escaping @Sendable () -> UInt64) {
        self.draw = draw
    }

    /// The operating system's cryptographic generator.
    public static var system: RandomSource {
        RandomSource {
            var generator = SystemRandomNumberGenerator()
            return generator.next()
        }
    }

    public mutating func next() -> UInt64 { draw() }

    /// A lowercase version-4 UUID made of 122 random bits.
    public mutating func uuidString() -> String {
        var bytes = (0..<2).flatMap { _ -> [UInt8] in
            let word = next()
            return (0..<8).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) }
        }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The protocol's `POST /v1/enroll` and `POST /v1/sync`, independent of any transport.
///
/// Authentication from the bearer token, inflating under the limits, decoding, the store's push and
/// pull, encoding and deflating, with the problem codes and statuses of protocol/SPEC.md section 8.
/// The Hummingbird app is a thin adapter over it; the simulator calls ``handle(path:authorization:contentEncoding:body:)``
/// directly, so it runs the very code production runs, minus the socket.
public struct SyncEndpoint<Store: ServerStore>: Sendable {
    /// Where devices, the change log and the pull come from.
    public let store: Store
    /// Body sizes, page sizes, the drift bound.
    public let limits: SyncLimits
    let metrics: ServerMetrics
    let random: RandomSource
    let logger: Logger

    /// The content type of frame bodies.
    public static var frameContentType: String { "application/vnd.clinicsync.frame" }
    /// The content type of problems (RFC 9457).
    public static var problemContentType: String { "application/problem+json" }

    /// - Parameters:
    ///   - random: draws device tokens; inject a seeded source for deterministic runs.
    ///   - logger: used by ``handle(path:authorization:contentEncoding:body:)``; the HTTP adapter passes its request's logger instead.
    public init(store: Store, limits: SyncLimits = SyncLimits(), metrics: ServerMetrics = ServerMetrics(), random: RandomSource = .system,
                logger: Logger = Logger(label: "clinic-sync.endpoint"))
    {
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.random = random
        self.logger = logger
    }

    /// Handles one request as the HTTP server would, and never throws: every failure is a problem response.
    /// `/v1/sync` authenticates before it looks at the body (SPEC 8.3).
    public func handle(path: String, authorization: String?, contentEncoding: String?, body: [UInt8],
                       headers: [String: String] = [:]) async -> EndpointResponse {
        do {
            switch path {
            case "/v1/enroll":
                try requireDeflate(contentEncoding)
                return try await enroll(compressed: body, logger: logger)
            case "/v1/sync":
                let device = try await authenticate(authorization: authorization)
                var logger = logger
                logger[metadataKey: "device"] = .string(device.id)
                try requireDeflate(contentEncoding)
                return try await sync(device, compressed: body, evidence: Self.evidence(headers), logger: logger)
            default:
                return Problem(.notFound, "not_found", "no endpoint \(path)").endpointResponse
            }
        } catch let problem as Problem {
            return problem.endpointResponse
        } catch {
            logger.error("internal error", metadata: Problem.metadata(of: error))
            return Problem.internalError.endpointResponse
        }
    }

    // MARK: Steps, in the order SPEC 8.3 gives them

    /// Steps 1–3: the device holding `Authorization: Bearer <token>`, not revoked.
    func authenticate(authorization header: String?) async throws -> Device {
        guard let header, header.hasPrefix("Bearer "), header.count > 7 else {
            throw Problem(.unauthorized, "missing_token", "send `Authorization: Bearer <device token>`; enroll the terminal to get one")
        }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard let device = try await store.device(tokenHash: Credentials.hash(token)) else {
            throw Problem(.unauthorized, "unknown_token", "this device token is not known to the server; enroll again")
        }
        await store.noteContact(device)
        guard !device.isRevoked else {
            throw Problem(.unauthorized, "revoked_token", "this device was revoked; ask an admin for a new enrollment code")
        }
        return device
    }

    /// Step 4: bodies must be zlib-deflated.
    func requireDeflate(_ contentEncoding: String?) throws {
        guard contentEncoding?.lowercased() == "deflate" else {
            throw Problem(.unsupportedMediaType, "unsupported_encoding", "bodies must be zlib-deflated with `Content-Encoding: deflate`")
        }
    }

    /// `POST /v1/enroll` after the encoding check: inflate, decode, consume the code, answer with a token.
    func enroll(compressed body: [UInt8], logger: Logger) async throws -> EndpointResponse {
        let frame = try readFrame(body, as: EnrollRequest.self, logger: logger)
        var generator = random
        let token = Credentials.makeToken(using: &generator)
        let (device, clock) = try await mapStoreErrors(logger: logger) {
            try await store.enroll(codeHash: Credentials.hash(Credentials.normalizedCode(frame.code)), deviceName: frame.deviceName,
                                   tokenHash: Credentials.hash(token))
        }
        logger.info("device enrolled", metadata: ["device": .string(device.id), "branch": .string(device.branch)])
        let response = EnrollResponse(token: token, replica: device.replica!, branch: device.branch, role: device.role, clock: clock)
        return frameResponse(FrameCodec.encode(response))
    }

    /// `POST /v1/sync` for an authenticated device, after the encoding check: steps 5–12.
    func sync(_ device: Device, compressed body: [UInt8], evidence: SyncEvidence, logger: Logger) async throws -> EndpointResponse {
        let started = ContinuousClock.now
        let frame = try readFrame(body, as: SyncRequest.self, logger: logger)
        let outcome = try await mapStoreErrors(logger: logger) { try await store.sync(frame, from: device, limits: limits, evidence: evidence) }
        if outcome.detectedRestore {
            logger.warning("store restored from an older copy: a terminal knew more than it holds; new epoch, terminals will re-send what they hold",
                           metadata: ["epoch": .string(outcome.epoch)])
        }
        metrics.accepted.increment(by: Int64(outcome.accepted))
        metrics.recordRejections(outcome.rejectedByReason)
        metrics.conflicts.increment(by: Int64(outcome.conflicts))
        if let wait = outcome.writeWait { metrics.writeWait.recordNanoseconds(wait.nanoseconds) }
        var response = frameResponse(FrameCodec.encode(outcome.response))
        response.headers[ProtocolHeader.storeEpoch] = outcome.epoch
        if evidence.rotateToken || device.rotateRequested {
            // Only on an answer that also carries a frame: a device that never reads it keeps its old token.
            var generator = random
            let token = Credentials.makeToken(using: &generator)
            try await mapStoreErrors(logger: logger) { try await store.setNextToken(deviceID: device.id, tokenHash: Credentials.hash(token)) }
            response.headers[ProtocolHeader.newToken] = token
            logger.notice("device token rotated; the old one works until the new one is first used")
        }
        metrics.syncLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        logger.info("sync", metadata: [
            "pushed": .stringConvertible(frame.changes.count), "accepted": .stringConvertible(outcome.accepted),
            "rejected": .stringConvertible(outcome.rejected), "conflicts": .stringConvertible(outcome.conflicts),
            "pulled": .stringConvertible(outcome.response.changes.count), "cursor": .stringConvertible(outcome.response.cursor),
        ])
        return response
    }

    /// Steps 5–8: at most the compressed limit, inflated under the limits, one frame of type `T`.
    private func readFrame<T>(_ compressed: [UInt8], as type: T.Type, logger: Logger) throws -> T {
        guard compressed.count <= limits.inflate.maxCompressedBytes else {
            throw Problem(.contentTooLarge, CompressionError.Code.compressedTooLarge.rawValue,
                          "the body is larger than \(limits.inflate.maxCompressedBytes) bytes")
        }
        let bytes: [UInt8]
        do {
            bytes = try Deflate.decompress(compressed, limits: limits.inflate)
        } catch {
            logger.notice("refused body", metadata: ["problem": .string(error.code.rawValue)])
            throw Problem(error)
        }
        metrics.bytesInCompressed.increment(by: Int64(compressed.count))
        metrics.bytesInInflated.increment(by: Int64(bytes.count))
        do {
            return try FrameCodec.decode(bytes, as: T.self)
        } catch {
            logger.notice("refused frame", metadata: ["problem": .string(error.code.rawValue), "offset": .stringConvertible(error.offset)])
            throw Problem(error)
        }
    }

    /// What the request's headers say the terminal knows. A malformed value is no evidence.
    static func evidence(_ headers: [String: String]) -> SyncEvidence {
        // Out-of-range or odd values are ignored, not refused: they only inform the operator's device list.
        let version = headers[ProtocolHeader.appVersion].flatMap { text in
            text.count <= 32 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-+_".contains($0)) } ? text : nil
        }
        return SyncEvidence(
            acknowledged: headers[ProtocolHeader.acknowledged].flatMap { UInt64($0) }.flatMap { $0 <= UInt64(Int64.max) ? $0 : nil },
            pending: headers[ProtocolHeader.pending].flatMap { Int32($0) }.flatMap { $0 >= 0 ? Int($0) : nil },
            appVersion: version, rotateToken: headers[ProtocolHeader.rotateToken] == "1")
    }

    private func frameResponse(_ body: [UInt8]) -> EndpointResponse {
        let compressed = Deflate.compress(body)
        metrics.bytesOutInflated.increment(by: Int64(body.count))
        metrics.bytesOutCompressed.increment(by: Int64(compressed.count))
        return EndpointResponse(status: 200, contentType: Self.frameContentType, contentEncoding: "deflate", body: compressed)
    }

    private func mapStoreErrors<T>(logger: Logger, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            if error.code == .storageFull || error.code == .storeUnavailable {
                // The operator must act; the detail says what happened and what to do, and holds no patient data.
                logger.error("store cannot serve", metadata: ["problem": .string(error.code.rawValue), "detail": .string(error.detail)])
            }
            throw Problem(error)
        }
    }
}

extension Problem {
    /// What the error shield answers for anything that is not already a problem: never the cause.
    static var internalError: Problem {
        Problem(.internalServerError, "internal_error", "the server could not complete the request; it has been logged")
    }

    /// The `application/problem+json` body (RFC 9457).
    var jsonBody: [UInt8] {
        Array((try? JSONEncoder().encode(body)) ?? Data())
    }

    var endpointResponse: EndpointResponse {
        EndpointResponse(status: status.code, contentType: "application/problem+json", body: jsonBody)
    }
}
