import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SyncCore
@testable import SyncServer

/// A wall clock tests can move.
final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var now: UInt64
    init(_ now: UInt64 = 1_764_380_000_000) { self.now = now }
    func milliseconds() -> UInt64 { lock.withLock { now } }
    func advance(_ milliseconds: UInt64) { lock.withLock { now += milliseconds } }
}

/// A temporary data folder with a real SQLite store, branches, and helpers to talk to the real app.
struct TestServer {
    let directory: String
    let store: SQLiteServerStore
    let clock: ManualClock
    var configuration = ServerConfiguration(port: 0)
    let metrics = ServerMetrics()

    init(limits: SyncLimits = SyncLimits(), directory: String? = nil) async throws {
        self.directory = directory ?? NSTemporaryDirectory() + "clinic-sync-test-\(UUID().uuidString)"
        clock = ManualClock()
        store = try SQLiteServerStore(directory: self.directory, clock: clock)
        configuration.limits = limits
        try await store.saveBranch(id: "harley-street", name: "Harley Street", address: "19 Harley St, London", phone: nil)
        try await store.saveBranch(id: "richmond", name: "Richmond", address: nil, phone: nil)
    }

    var app: some ApplicationProtocol {
        var logger = Logger(label: "test-server")
        logger.logLevel = .warning
        return buildApplication(configuration, store: store, metrics: metrics, logger: logger)
    }

    /// Issues an enrollment code for a new device.
    func issueCode(branch: String, role: DeviceRole = .terminal) async throws -> String {
        var generator = SystemRandomNumberGenerator()
        let code = Credentials.makeEnrollmentCode(using: &generator)
        _ = try await store.addDevice(branch: branch, name: "test \(branch)", role: role, codeHash: Credentials.hash(Credentials.normalizedCode(code)),
                                      codeExpiresAt: Date(timeIntervalSince1970: Double(clock.milliseconds()) / 1000 + 3600))
        return code
    }
}

/// One enrolled device as a test drives it.
struct TestDevice {
    let token: String
    let replica: ReplicaID
    let branch: String
    var counter: UInt64 = 0
    var clock = HybridLogicalClock()

    mutating func write(_ table: TableID, _ row: String, _ cells: [(ColumnID, Value)], baseSeq: UInt64 = 0, wall: UInt64) -> [PushedChange] {
        let hlc = clock.tick(wall: wall)
        return cells.map { cell in
            counter += 1
            return PushedChange(counter: counter, change: Change(
                table: table, row: row, operation: .write(column: cell.0, value: cell.1, baseSeq: baseSeq),
                version: Version(hlc: hlc, replica: replica)))
        }
    }

    func request(_ changes: [PushedChange] = [], cursor: UInt64 = 0, pageLimit: UInt32 = 0) -> SyncRequest {
        SyncRequest(replica: replica, clock: clock.last, cursor: cursor, pageLimit: pageLimit, changes: changes)
    }
}

enum Wire {
    static func body(_ frame: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: Deflate.compress(frame)) }

    static func headers(token: String?) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/vnd.clinicsync.frame", .contentEncoding: "deflate"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        return headers
    }

    static func frame<T>(_ response: TestResponse, as: T.Type) throws -> T {
        try FrameCodec.decode(Deflate.decompress(Array(response.body.readableBytesView)), as: T.self)
    }

    static func problem(_ response: TestResponse) throws -> Problem.Body {
        try JSONDecoder().decode(Problem.Body.self, from: Data(response.body.readableBytesView))
    }
}

extension TestClientProtocol {
    func enroll(code: String, name: String = "reception") async throws -> TestResponse {
        try await execute(uri: "/v1/enroll", method: .post, headers: Wire.headers(token: nil),
                          body: Wire.body(FrameCodec.encode(EnrollRequest(code: code, deviceName: name))))
    }

    func enrolledDevice(_ server: TestServer, branch: String, role: DeviceRole = .terminal) async throws -> TestDevice {
        let response = try await enroll(code: server.issueCode(branch: branch, role: role))
        let enrolled = try Wire.frame(response, as: EnrollResponse.self)
        return TestDevice(token: enrolled.token, replica: enrolled.replica, branch: enrolled.branch)
    }

    func sync(_ request: SyncRequest, token: String?) async throws -> TestResponse {
        try await execute(uri: "/v1/sync", method: .post, headers: Wire.headers(token: token), body: Wire.body(FrameCodec.encode(request)))
    }

    /// Syncs and decodes, failing the test on a problem.
    func syncOK(_ request: SyncRequest, token: String) async throws -> SyncResponse {
        let response = try await sync(request, token: token)
        guard response.status == .ok else {
            throw TestFailure("sync answered \(response.status.code): \(String(buffer: response.body))")
        }
        return try Wire.frame(response, as: SyncResponse.self)
    }

    /// Pulls every page after `cursor`.
    func pullAll(_ device: TestDevice, after cursor: UInt64 = 0, pageLimit: UInt32 = 0) async throws -> (changes: [PulledChange], exits: [ScopeExit], cursor: UInt64) {
        var cursor = cursor
        var changes: [PulledChange] = []
        var exits: [ScopeExit] = []
        while true {
            let page = try await syncOK(device.request(cursor: cursor, pageLimit: pageLimit), token: device.token)
            changes += page.changes
            exits += page.exits
            cursor = page.cursor
            if !page.more { return (changes, exits, cursor) }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
