import Foundation
import Logging
import SyncClient
import SyncCore
import SyncServer

/// A real server on loopback (real SQLite, real HTTP, real zlib) and terminals enrolled against it.
struct Harness {
    let directory: String
    let store: SQLiteServerStore
    let port: Int
    /// The server's certificate, when it serves HTTPS.
    var tls: ServerTLS? = nil

    var url: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }

    static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// Runs `body` with a fresh server holding two branches and a content page.
    static func run(limits: SyncLimits = SyncLimits(), tls: ServerTLS? = nil, _ body: @Sendable (Harness) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-client-\(UUID().uuidString)"
        let store = try SQLiteServerStore(directory: directory + "/server")
        try await store.saveBranch(id: "harley-street", name: "Harley Street", address: "19 Harley St, London", phone: nil)
        try await store.saveBranch(id: "richmond", name: "Richmond", address: nil, phone: nil)
        try await store.write([
            CellWrite(.content, "manual-therapy", Columns.Content.kind, "page"),
            CellWrite(.content, "manual-therapy", Columns.Content.slug, "manual-therapy"),
            CellWrite(.content, "manual-therapy", Columns.Content.title, "Manual Therapy"),
        ])
        var configuration = ServerConfiguration(port: 0)
        configuration.limits = limits
        configuration.tls = tls
        try await withRunningServer(configuration, store: store, logger: logger) { port in
            try await body(Harness(directory: directory, store: store, port: port, tls: tls))
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A one-time enrollment code for a new device at `branch`.
    func enrollmentCode(_ name: String, branch: String = "harley-street") async throws -> String {
        var generator = SystemRandomNumberGenerator()
        let code = Credentials.makeEnrollmentCode(using: &generator)
        _ = try await store.addDevice(branch: branch, name: name, role: .terminal, codeHash: Credentials.hash(Credentials.normalizedCode(code)),
                                      codeExpiresAt: Date().addingTimeInterval(3600))
        return code
    }

    /// A new replica file enrolled at `branch`, syncing as the CLI and the daemon do: with the trust it was enrolled with.
    func terminal(_ name: String, branch: String = "harley-street", trust: ServerTrust = .system, transport: (any SyncTransport)? = nil) async throws -> Terminal {
        let code = try await enrollmentCode(name, branch: branch)
        let replica = try Replica.open(at: "\(directory)/\(name).sqlite")
        try await replica.enroll(server: url, code: code, deviceName: name, trust: trust)
        return Terminal(replica: replica, engine: SyncEngine(replica: replica, transport: try transport ?? HTTPTransport.forReplica(replica), logger: Self.logger))
    }
}

struct Terminal {
    let replica: Replica
    var engine: SyncEngine

    @discardableResult
    func sync() async throws -> SyncSummary { try await engine.sync() }
}

/// Wraps a transport to inject failures: lose the response of chosen calls (the server did the
/// work, the client never hears), or fail before sending.
final class FaultyTransport: SyncTransport, @unchecked Sendable {
    let base: any SyncTransport
    private let lock = NSLock()
    private var calls = 0
    private let loseResponseOfCalls: Set<Int>
    private let failBeforeCalls: Set<Int>

    init(_ base: any SyncTransport, loseResponseOfCalls: Set<Int> = [], failBeforeCalls: Set<Int> = []) {
        self.base = base
        self.loseResponseOfCalls = loseResponseOfCalls
        self.failBeforeCalls = failBeforeCalls
    }

    var callCount: Int { lock.withLock { calls } }

    func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse {
        try await post(path, body: body, token: token, headers: [:])
    }

    func post(_ path: String, body: [UInt8], token: String?, headers: [String: String]) async throws -> TransportResponse {
        let call = lock.withLock { calls += 1; return calls }
        if failBeforeCalls.contains(call) { throw SyncError.offline("injected: link down before call \(call)") }
        let response = try await base.post(path, body: body, token: token, headers: headers)
        if loseResponseOfCalls.contains(call) { throw SyncError.offline("injected: response of call \(call) lost") }
        return response
    }
}
