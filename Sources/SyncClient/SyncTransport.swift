import AsyncHTTPClient
import Foundation
import NIOCore
import SyncCore

/// What a transport got back.
public struct TransportResponse: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
    /// Other headers the client reads, by lower-case name (`clinicsync-store-epoch`, SPEC 7.9).
    public var headers: [String: String]

    public init(status: Int, contentType: String?, body: [UInt8], headers: [String: String] = [:]) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }
}

/// Carries deflated frames to the server: HTTP in production, in memory in the simulator.
public protocol SyncTransport: Sendable {
    /// POSTs a deflated frame to `path` (`/v1/sync`, `/v1/enroll`). Throws ``SyncError/offline`` when
    /// the server cannot be reached.
    func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse
    /// The same, with extra request headers (`clinicsync-acknowledged`, SPEC 7.9). Transports that
    /// cannot carry them may drop them: they are evidence that helps, not something sync depends on.
    func post(_ path: String, body: [UInt8], token: String?, headers: [String: String]) async throws -> TransportResponse
}

extension SyncTransport {
    public func post(_ path: String, body: [UInt8], token: String?, headers: [String: String]) async throws -> TransportResponse {
        try await post(path, body: body, token: token)
    }
}

/// The HTTP client terminals share. A global lives as long as the process, so it is never shut down
/// (AsyncHTTPClient's own `.shared` inflates responses itself, which would bypass our limits).
///
/// Timeouts: `execute(_:timeout:)` stops counting once the response head arrives, so a body that
/// stalls halfway would hang a sync forever; the read timeout bounds every wait for bytes. It does not
/// retry refused connections itself: that would hold a sync for the whole connect timeout before
/// saying "connection refused", and the daemon already retries with backoff.
public let sharedSyncHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration(
        timeout: HTTPClient.Configuration.Timeout(connect: .seconds(3), read: .seconds(30)), decompression: .disabled)
    configuration.connectionPool.retryConnectionEstablishment = false
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()

/// HTTP/1.1 through AsyncHTTPClient.
public struct HTTPTransport: SyncTransport {

    public let baseURL: String
    public let timeout: TimeAmount
    public let trust: ServerTrust
    let client: HTTPClient

    /// - Parameters:
    ///   - baseURL: e.g. `https://sync.example.org:8443`; `http://` only to loopback unless `trust` allows it.
    ///   - trust: which server certificates to accept (the system store by default).
    ///   - client: defaults to a process-wide client that is never shut down. Its decompression is
    ///     off: bodies are inflated by SyncCore under our own limits, not by the HTTP layer.
    public init(baseURL: String, trust: ServerTrust = .system, timeout: TimeAmount = .seconds(30), client: HTTPClient = sharedSyncHTTPClient) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.trust = trust
        self.timeout = timeout
        self.client = client
    }

    public func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse {
        try await post(path, body: body, token: token, headers: [:])
    }

    public func post(_ path: String, body: [UInt8], token: String?, headers: [String: String]) async throws -> TransportResponse {
        // Checked on every request, not only at enrollment: a file edited by hand or repointed by an
        // older build must not send its token in clear either.
        let mode = try trust.tlsMode(for: baseURL)
        var extraFields = headers.map { ($0.key, $0.value) }
        extraFields.append(("Content-Type", "application/vnd.clinicsync.frame"))
        extraFields.append(("Content-Encoding", "deflate"))
        if let token { extraFields.append(("Authorization", "Bearer \(token)")) }
        let fields = extraFields
        var request = HTTPClientRequest(url: baseURL + path)
        for (name, value) in fields { request.headers.add(name: name, value: value) }
        request.method = .POST
        request.body = .bytes(ByteBuffer(bytes: body))
        if case .verified(let configuration) = mode { request.tlsConfiguration = configuration }
        let (client, timeout, prepared, baseURL) = (self.client, self.timeout, request, self.baseURL)
        do {
            // One deadline for the head *and* the body: `execute`'s own timeout ends with the head, so a
            // body that stalls halfway would otherwise hang the sync for good.
            return try await withThrowingTaskGroup(of: TransportResponse?.self) { group in
                group.addTask {
                    // The same connect timeout as `sharedSyncHTTPClient`.
                    if case .pinned(let pin) = mode, let url = URLComponents(string: baseURL) {
                        return try await PinnedHTTPS.post(url: url, path: path, headers: fields, body: body, pin: pin,
                                                          connectTimeout: .seconds(3))
                    }
                    let response = try await client.execute(prepared, timeout: timeout)
                    // Responses are bounded too: a page is at most a few MiB deflated.
                    let buffer = try await response.body.collect(upTo: 64 << 20)
                    var kept: [String: String] = [:]
                    for name in ProtocolHeader.answerHeaders { kept[name] = response.headers.first(name: name) }
                    return TransportResponse(status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                                             body: Array(buffer.readableBytesView), headers: kept)
                }
                group.addTask {
                    try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else { throw HTTPClientError.deadlineExceeded }
                return response
            }
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .connectTimeout {
            throw SyncError.offline("\(baseURL) did not answer in time")
        } catch {
            // A certificate that is not trusted is a configuration problem to report, not an outage to
            // wait out; anything else below HTTP (refused, reset, DNS, timeout) means offline for now.
            throw ConnectionFailure.classify(error, baseURL: baseURL, trust: trust)
        }
    }
}

/// Why a sync (or enrollment) failed. Typed so an app and the daemon can react: back off when
/// offline, stop and alert when unauthorized, and so on. Never carries patient data.
public struct SyncError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable {
        /// The server could not be reached; try again later.
        case offline
        /// The token is missing, unknown or revoked; the terminal must be enrolled again.
        case unauthorized
        /// The server speaks another protocol version, or answered with something that is not a frame.
        case incompatibleServer = "incompatible_server"
        /// The server refused this terminal's clock; fix the clock, then sync.
        case clockDrift = "clock_drift"
        /// The server refused the request for another reason (see `problem`).
        case refused
        /// This replica is not enrolled.
        case notEnrolled = "not_enrolled"
        /// The server's certificate is not one this terminal trusts (unknown CA, wrong name, another key
        /// than the pinned one, expired): a wrong server or a changed certificate, not an outage.
        case untrustedServerCertificate = "untrusted_server_certificate"
        /// The TLS handshake failed for another reason (e.g. the server speaks plain HTTP).
        case tlsFailed = "tls_failed"
        /// `http://` to a host beyond loopback without `--allow-insecure-http`.
        case insecureTransport = "insecure_http"
        /// The server URL, CA file or pin given is not usable.
        case invalidServerSettings = "invalid_server_settings"
        /// The server is up but this device asked too often (`429 rate_limited`): wait ``SyncError/retryAfter``, then sync.
        case rateLimited = "rate_limited"
    }

    public let code: Code
    /// The server's problem code, if it sent one.
    public let problem: String?
    public let detail: String
    /// With `replica_rolled_back` (SPEC 7.8): the replica id to carry on as, and the server's clock.
    var carryOnAs: ReplicaID?
    var serverClock: HLC?
    /// With `device_moved`: the branch an operator moved this device to.
    var movedTo: String?
    /// With ``Code/rateLimited``: how long the server asked this device to wait (its `Retry-After`).
    public internal(set) var retryAfter: Duration?

    public init(code: Code, problem: String? = nil, detail: String) {
        self.code = code
        self.problem = problem
        self.detail = detail
    }

    public static func offline(_ detail: String) -> SyncError { SyncError(code: .offline, detail: detail) }

    /// The server refused a whole push for its size, count or compressibility: a smaller one may pass.
    var refusesRequestSize: Bool {
        code == .refused && ["too_many_changes", "body_too_large", "inflated_too_large", "compression_ratio_exceeded"].contains(problem ?? "")
    }

    public var description: String {
        switch code {
        case .offline: "offline: \(detail)"
        case .unauthorized: "unauthorized (\(problem ?? "401")): \(detail)"
        case .incompatibleServer: "incompatible server: \(detail)"
        case .clockDrift: "clock drift: \(detail)"
        case .refused: "refused (\(problem ?? "?")): \(detail)"
        case .notEnrolled: detail
        case .untrustedServerCertificate: "untrusted server certificate (\(problem ?? code.rawValue)): \(detail)"
        case .tlsFailed: "TLS failed: \(detail)"
        case .insecureTransport, .invalidServerSettings: detail
        case .rateLimited: "rate limited: \(detail)"
        }
    }
}
