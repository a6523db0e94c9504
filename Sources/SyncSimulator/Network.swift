import Foundation
import SyncClient
import SyncCore
import SyncServer

/// A fault forced on a device's next request (scenarios script them; random runs roll them).
public enum NetworkFault: String, Hashable, Sendable, CaseIterable, Codable {
    /// The request never reaches the server.
    case dropRequest = "drop_request"
    /// The server does the work; the answer is lost.
    case dropResponse = "drop_response"
    /// The request arrives twice; the device hears the second answer.
    case duplicate
    /// The request is held back and delivered later, after newer ones; the device gives up on it.
    case delay
    /// The server does the work, then crashes before answering, and restarts.
    case serverCrash = "server_crash"
    /// The device crashes while waiting for the answer, and restarts.
    case deviceCrash = "device_crash"
}

/// How often random runs inject each network fault, in percent of requests.
struct FaultRates: Sendable {
    var dropRequest = 4
    var dropResponse = 4
    var duplicate = 4
    var delay = 4
    var serverCrash = 1
    var deviceCrash = 2
}

/// Counts of what the network did, for the summary.
public struct NetworkStats: Hashable, Sendable, Codable {
    /// Requests devices sent.
    public var requests = 0
    /// Answers that reached their device.
    public var delivered = 0
    /// Requests lost before the server.
    public var droppedRequests = 0
    /// Answers lost after the server did the work.
    public var droppedResponses = 0
    /// Requests delivered twice.
    public var duplicated = 0
    /// Requests held back.
    public var delayed = 0
    /// Held-back requests delivered later.
    public var deliveredLate = 0
    /// Requests refused by a partition.
    public var refusedPartitioned = 0
    /// Server crashes mid-request.
    public var serverCrashes = 0
    /// Device crashes mid-request.
    public var deviceCrashes = 0
    /// Problem codes answered, by code.
    public var problems: [String: Int] = [:]
}

/// A request the network holds back, to deliver after newer ones.
struct DelayedRequest: Sendable {
    var device: String
    var path: String
    var token: String?
    var body: [UInt8]
    var headers: [String: String]
}

/// Everything the network and the observers share, behind one lock.
struct NetworkState: Sendable {
    var step = 0
    var partitioned: Set<String> = []
    var delayed: [DelayedRequest] = []
    var scripted: [String: [NetworkFault]] = [:]
    /// Network faults rolled at random (off during setup and quiescence).
    var randomFaults: FaultSet = []
    var rates = FaultRates()
    /// Devices that crashed mid-request: the simulation restarts them when their sync returns.
    var crashed: Set<String> = []
    var replicas: [String: ReplicaID] = [:]
    var knowledge = Knowledge()
    /// Replica ids the server re-assigned (SPEC 7.8), by device, as soon as it did.
    var reassigned: [String: ReplicaID] = [:]
    var labels = Labels()
    var trace: [TraceEvent] = []
    var stats = NetworkStats()
    /// Rows touched by requests since the simulation last asked.
    var touched: Set<String> = []
    /// 500s: the server must never fail.
    var serverFailures: [String] = []

    mutating func log(_ actor: String, _ text: String, rows: Set<String> = [], time: UInt64) {
        trace.append(TraceEvent(step: step, time: time - SimulatedTime.start, actor: actor, text: text, rows: rows.sorted()))
    }
}

/// The simulated network between devices and the server: routes requests to the real ``SyncEndpoint``
/// and drops, duplicates, delays and partitions them. It also watches every frame that passes, which is
/// how the simulator learns what the server acknowledged and what each device has seen.
public final class Network: @unchecked Sendable {
    let server: SimulatedServer
    let random: SeededRandom
    let time: SimulatedTime
    private let lock = NSLock()
    private var state = NetworkState()

    init(server: SimulatedServer, random: SeededRandom, time: SimulatedTime) {
        self.server = server
        self.random = random
        self.time = time
    }

    func withState<T>(_ body: (inout NetworkState) throws -> T) rethrows -> T {
        try lock.withLock { try body(&state) }
    }

    func log(_ actor: String, _ text: String, rows: Set<String> = []) {
        let now = time.milliseconds
        withState { $0.log(actor, text, rows: rows, time: now) }
    }

    /// The transport a device uses.
    func transport(for device: String) -> InMemoryTransport {
        InMemoryTransport(network: self, device: device)
    }

    func post(from device: String, path: String, body: [UInt8], token: String?, headers: [String: String] = [:]) async throws -> TransportResponse {
        let (partitioned, fault) = withState { state -> (Bool, NetworkFault?) in
            state.stats.requests += 1
            if state.partitioned.contains(device) { return (true, nil) }
            if var queue = state.scripted[device], !queue.isEmpty {
                let fault = queue.removeFirst()
                state.scripted[device] = queue
                return (false, fault)
            }
            return (false, path == "/v1/sync" ? rollFault(state.randomFaults, rates: state.rates) : nil)
        }
        if partitioned {
            withState { $0.stats.refusedPartitioned += 1 }
            throw SyncError.offline("simulated partition: \(device) cannot reach the server")
        }
        switch fault {
        case .dropRequest:
            withState { $0.stats.droppedRequests += 1 }
            log("net", "\(device) → \(path): request dropped", rows: rows(inRequest: body))
            throw SyncError.offline("simulated: request lost")
        case .delay:
            withState {
                $0.stats.delayed += 1
                $0.delayed.append(DelayedRequest(device: device, path: path, token: token, body: body, headers: headers))
            }
            log("net", "\(device) → \(path): request delayed (held back)", rows: rows(inRequest: body))
            throw SyncError.offline("simulated: request timed out")
        default:
            break
        }
        var response = await deliver(from: device, path: path, body: body, token: token, headers: headers)
        switch fault {
        case .duplicate:
            withState { $0.stats.duplicated += 1 }
            log("net", "\(device) → \(path): request duplicated", rows: rows(inRequest: body))
            response = await deliver(from: device, path: path, body: body, token: token, headers: headers)
        case .dropResponse:
            withState { $0.stats.droppedResponses += 1 }
            log("net", "\(device) ← \(path): response dropped", rows: rows(inRequest: body))
            throw SyncError.offline("simulated: response lost")
        case .serverCrash:
            withState { $0.stats.serverCrashes += 1 }
            try server.restart()
            log("server", "crashed after committing \(device)'s request, before answering; restarted from its file", rows: rows(inRequest: body))
            throw SyncError.offline("simulated: server crashed")
        case .deviceCrash:
            withState {
                $0.stats.deviceCrashes += 1
                $0.crashed.insert(device)
            }
            log("net", "\(device) crashed waiting for the answer to \(path)", rows: rows(inRequest: body))
            throw SyncError.offline("simulated: device crashed")
        default:
            break
        }
        if response.status == 200, path == "/v1/sync", let frame = Self.decode(response.body, as: SyncResponse.self) {
            withState { $0.knowledge.recordHeard(device: device, response: frame) }
        }
        withState { $0.stats.delivered += 1 }
        return TransportResponse(status: response.status, contentType: response.contentType, body: response.body, headers: response.headers)
    }

    /// Delivers every held-back request now, oldest first; their answers go nowhere.
    func deliverDelayed() async {
        let delayed = withState { state -> [DelayedRequest] in
            defer { state.delayed.removeAll() }
            return state.delayed
        }
        for request in delayed {
            withState { $0.stats.deliveredLate += 1 }
            log("net", "\(request.device) → \(request.path): delayed request arrives late", rows: rows(inRequest: request.body))
            _ = await deliver(from: request.device, path: request.path, body: request.body, token: request.token, headers: request.headers)
        }
    }

    /// A request delivered as it is, past every fault and partition: the compromised terminal's.
    func sendRaw(from device: String, body: [UInt8], token: String) async -> EndpointResponse {
        withState { $0.stats.requests += 1 }
        return await deliver(from: device, path: "/v1/sync", body: body, token: token, headers: [:])
    }

    /// Runs one request through the endpoint and records what the server did with it.
    private func deliver(from device: String, path: String, body: [UInt8], token: String?, headers: [String: String]) async -> EndpointResponse {
        let response = await server.endpoint.handle(path: path, authorization: token.map { "Bearer \($0)" }, contentEncoding: "deflate", body: body,
                                                    headers: headers)
        let now = time.milliseconds
        if response.status != 200 {
            let code = Self.problemCode(response.body) ?? "HTTP \(response.status)"
            let replica = code == "replica_rolled_back" ? Self.problemReplica(response.body) : nil
            withState { state in
                if let replica, state.reassigned[device] != replica {
                    state.reassigned[device] = replica
                    state.knowledge.reassign(device: device, to: replica)
                }
                state.stats.problems[code, default: 0] += 1
                if response.status >= 500 { state.serverFailures.append("step \(state.step): \(device) \(path) answered \(response.status) \(code)") }
                state.log("server", "\(device) \(path) → \(response.status) \(code)", rows: [], time: now)
            }
            return response
        }
        guard path == "/v1/sync", let request = Self.decode(body, as: SyncRequest.self),
              let answer = Self.decode(response.body, as: SyncResponse.self)
        else { return response }
        withState { state in
            state.knowledge.recordProcessed(device: device, request: request, response: answer, step: state.step)
            for pulled in answer.changes where pulled.change.table == .conflict {
                if case .write(let column, .text(let about), _) = pulled.change.operation, column == Columns.Conflict.rowID {
                    state.labels.conflict(id: pulled.change.row, about: about)
                }
            }
            var touched = Set(request.changes.map { state.labels.enquiryLabel(of: $0.change.row) })
            touched.formUnion(answer.changes.filter { $0.change.table == .enquiry || $0.change.table == .enquiryNote || $0.change.table == .conflict }
                .map { state.labels.enquiryLabel(of: $0.change.row) })
            touched.formUnion(answer.exits.map { state.labels.enquiryLabel(of: $0.row) })
            state.touched.formUnion(touched)
        }
        return response
    }

    private func rollFault(_ faults: FaultSet, rates: FaultRates) -> NetworkFault? {
        guard !faults.isEmpty else { return nil }
        let roll = random.int(below: 100)
        var threshold = 0
        let table: [(FaultSet, Int, NetworkFault)] = [
            (.drop, rates.dropRequest, .dropRequest), (.drop, rates.dropResponse, .dropResponse),
            (.duplicate, rates.duplicate, .duplicate), (.reorder, rates.delay, .delay),
            (.crash, rates.serverCrash, .serverCrash), (.crash, rates.deviceCrash, .deviceCrash),
        ]
        for (fault, rate, outcome) in table where faults.contains(fault) {
            threshold += rate
            if roll < threshold { return outcome }
        }
        return nil
    }

    private func rows(inRequest body: [UInt8]) -> Set<String> {
        guard let request = Self.decode(body, as: SyncRequest.self) else { return [] }
        return withState { state in Set(request.changes.map { state.labels.enquiryLabel(of: $0.change.row) }) }
    }

    static func decode<T>(_ body: [UInt8], as: T.Type) -> T? {
        guard let bytes = try? Deflate.decompress(body, limits: InflateLimits(maxCompressedBytes: 64 << 20, maxInflatedBytes: 256 << 20, maxRatio: 1000))
        else { return nil }
        return try? FrameCodec.decode(bytes, as: T.self)
    }

    static func problemCode(_ body: [UInt8]) -> String? {
        struct Problem: Decodable { var code: String }
        return try? JSONDecoder().decode(Problem.self, from: Data(body)).code
    }

    static func problemReplica(_ body: [UInt8]) -> ReplicaID? {
        struct Problem: Decodable { var replica: String? }
        return (try? JSONDecoder().decode(Problem.self, from: Data(body)))?.replica.flatMap(ReplicaID.init)
    }
}

/// A device's ``SyncTransport`` in a simulation: every request goes through the simulated ``Network``
/// to the real ``SyncEndpoint``, with no socket in between.
public struct InMemoryTransport: SyncTransport {
    let network: Network
    /// The device this transport belongs to (faults and partitions are per device).
    public let device: String

    /// Sends the request through the simulated network to the server's ``SyncEndpoint``.
    public func post(_ path: String, body: [UInt8], token: String?) async throws -> TransportResponse {
        try await network.post(from: device, path: path, body: body, token: token)
    }

    public func post(_ path: String, body: [UInt8], token: String?, headers: [String: String]) async throws -> TransportResponse {
        try await network.post(from: device, path: path, body: body, token: token, headers: headers)
    }
}
