import Foundation
import Hummingbird
import SyncCore

/// An `application/problem+json` error (RFC 9457) with a stable `code`. The detail never carries
/// patient data or SQLite's own text.
public struct Problem: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
    public var headers: HTTPFields = [:]
    /// Extension members of `replica_rolled_back` (SPEC 7.8): the replica to carry on as, the server's clock.
    public var replica: ReplicaID?
    public var clock: HLC?
    /// Extension member of `device_moved`: the device's new branch.
    public var branch: String?

    public init(_ status: HTTPResponse.Status, _ code: String, _ detail: String) {
        self.status = status
        self.code = code
        self.detail = detail
    }

    struct Body: Codable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var code: String
        var replica: String?
        /// The server's HLC as a decimal string: JSON numbers lose precision above 2^53.
        var clock: String?
        var branch: String?
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = self.body
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        let data = try JSONEncoder().encode(body)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension Problem {
    init(_ error: FrameError) {
        self.init(.badRequest, error.code.rawValue, error.description)
    }

    init(_ error: CompressionError) {
        switch error.code {
        case .compressedTooLarge, .inflatedTooLarge: self.init(.contentTooLarge, error.code.rawValue, error.detail)
        case .ratioExceeded, .corrupt: self.init(.badRequest, error.code.rawValue, error.detail)
        }
    }

    init(_ error: StoreError) {
        let status: HTTPResponse.Status =
            switch error.code {
            case .invalidEnrollmentCode: .unauthorized
            case .clockDrift, .invalidWrite: .unprocessableContent
            case .tooManyChanges: .contentTooLarge
            case .replicaMismatch: .forbidden
            case .replicaRolledBack, .deviceMoved: .conflict
            case .unknownBranch, .unknownDevice, .notFound: .notFound
            case .noStore, .storeUnavailable: .serviceUnavailable
            case .storageFull: .init(code: 507, reasonPhrase: "Insufficient Storage")
            }
        self.init(status, error.code.rawValue, error.detail)
        replica = error.replica
        clock = error.clock
        branch = error.branch
    }

    var body: Body {
        Body(type: "urn:clinicsync:problem:\(code)", title: status.reasonPhrase, status: status.code, detail: detail, code: code,
             replica: replica?.description, clock: clock.map { String($0.rawValue) }, branch: branch)
    }
}
