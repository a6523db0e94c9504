import Foundation
import GRDB
import Logging
import SyncClient
import SyncCore
import SyncServer
import SyncStorage

/// What a run is: everything in it derives from these values, so they are also its replay command.
public struct SimulationConfiguration: Hashable, Sendable {
    /// Every choice of the run derives from it.
    public var seed: UInt64
    /// Reception terminals, spread over the two branches (`a`, `b`, `c`…). Each branch also has an editor device.
    public var terminals: Int
    /// Random steps before quiescence.
    public var steps: Int
    /// The faults injected.
    public var faults: FaultSet
    /// Another merge rule for the server and terminals, injected by a test to prove the checks catch
    /// a broken one; nil runs the real rule (the CLI offers nothing else).
    public var mergeRule: MergeRuleOverride?

    public init(seed: UInt64 = 1, terminals: Int = 3, steps: Int = 40, faults: FaultSet = .all, mergeRule: MergeRuleOverride? = nil) {
        self.seed = seed
        self.terminals = terminals
        self.steps = steps
        self.faults = faults
        self.mergeRule = mergeRule
    }

    /// The one-line command that replays this run exactly (with a test's merge rule, only that test can).
    public var replayCommand: String {
        "swift run clinic-sync simulate --seed \(seed) --terminals \(terminals) --steps \(steps) --faults \(faults.list)"
            + (mergeRule.map { " (with the test's merge rule '\($0.name)')" } ?? "")
    }
}

/// A merge rule a test puts in place of the real one. Told apart by its name.
public struct MergeRuleOverride: Sendable, Hashable {
    public var name: String
    public var decide: WriteDecider

    public init(name: String, decide: @escaping WriteDecider) {
        self.name = name
        self.decide = decide
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

/// A broken invariant, with the rows it concerns.
public struct Violation: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The check that failed: `convergence`, `no-silent-loss`, `conflict-recorded`, `notes`, `scope`, …
    public var check: String
    /// What is wrong, naming rows by label and never by patient data beyond the simulator's own samples.
    public var message: String
    /// Labels of the enquiries involved (`e3`).
    public var rows: [String]

    public init(check: String, message: String, rows: [String] = []) {
        self.check = check
        self.message = message
        self.rows = rows
    }

    public var description: String { "[\(check)] \(message)" }
}

/// One device in a simulation: a real ``Replica`` file and a real ``SyncEngine`` over an ``InMemoryTransport``.
final class SimulatedDevice {
    let name: String
    let branch: String
    let role: DeviceRole
    let path: String
    let clock: SkewedClock
    let transport: InMemoryTransport
    var replica: Replica
    var engine: SyncEngine
    var replicaID = ReplicaID(0)
    /// The replica id last read from the file.
    var lastKnownReplica = ReplicaID(0)
    /// The highest outbox counter the simulator has recorded as a local write.
    var recordedCounter: Int64 = 0
    /// The clock high-water mark last read from the file.
    var lastHLC = HLC.zero
    /// The file's last backup (the `rollback` fault).
    var backup: DeviceBackup?
    /// The server's store was restored and this device has not re-sent what it holds yet.
    var awaitsResupply = false
    let pageSize: UInt32
    let pushBatchSize: Int

    init(name: String, branch: String, role: DeviceRole, path: String, clock: SkewedClock, transport: InMemoryTransport,
         replica: Replica, pageSize: UInt32, pushBatchSize: Int)
    {
        self.name = name
        self.branch = branch
        self.role = role
        self.path = path
        self.clock = clock
        self.transport = transport
        self.replica = replica
        self.pageSize = pageSize
        self.pushBatchSize = pushBatchSize
        engine = SyncEngine(replica: replica, transport: transport, logger: Simulation.quietLogger)
        engine.pageSize = pageSize
        engine.pushBatchSize = pushBatchSize
    }
}

/// A deterministic world: one real server store and real terminal replicas in a temporary folder,
/// a virtual clock, and a simulated network. Drive it with ``perform(_:)``, then ``quiesce()`` and ``check()``.
///
/// Nothing in it reads the real clock, the system's randomness or a dictionary's iteration order
/// where that could change what happens: the same actions give the same trace, byte for byte.
public final class Simulation {
    /// The branches every simulation has.
    public static let branches = ["harley-street", "richmond"]
    /// The server's drift bound (SPEC section 9).
    public static let maxClockDrift: UInt64 = SyncLimits().maxClockDriftMilliseconds

    static var quietLogger: Logger {
        var logger = Logger(label: "clinic-sync.simulator")
        logger.logLevel = .critical
        return logger
    }

    /// The seed ids and values derive from.
    public let seed: UInt64
    /// TEST ONLY: whether the merge rule runs broken (the lower version wins).
    public let mergeRule: MergeRuleOverride?
    let directory: String
    let time: SimulatedTime
    /// Draws ids, tokens and enrollment codes.
    let ids: SeededRandom
    let server: SimulatedServer
    let network: Network
    var devices: [SimulatedDevice] = []
    /// Found while running (clocks, unexpected errors); the final checks add the rest.
    var violations: [Violation] = []
    var serverReader: DatabaseQueue?
    var serverHLC = HLC.zero
    /// The server store's last backup (the `restore` fault).
    var serverBackup: ServerBackup?
    /// The compromised terminal, once enrolled (the `extreme` fault).
    var rogueDevice: RogueDevice?
    var syncsSucceeded = 0
    var syncsFailed = 0
    var deviceRestarts = 0
    /// Per device, how its last sync ended: `ok`, the server's problem code, or the error's code.
    public private(set) var lastSyncOutcome: [String: String] = [:]

    /// A new world holding the two branches and one content page, with no devices yet.
    public init(seed: UInt64, mergeRule: MergeRuleOverride? = nil) async throws {
        self.seed = seed
        self.mergeRule = mergeRule
        directory = Self.makeDirectory()
        time = SimulatedTime()
        ids = SeededRandom(seed: seed ^ 0x1D5_1D5_1D5)
        let serverClock = SkewedClock(time: time)
        server = try SimulatedServer(directory: directory + "/server", clock: serverClock, random: ids, mergeRule: mergeRule)
        network = Network(server: server, random: SeededRandom(seed: seed ^ 0x0E7_0E7_0E7), time: time)
        try await server.store.saveBranch(id: "harley-street", name: "Harley Street", address: "19 Harley St, London", phone: nil)
        try await server.store.saveBranch(id: "richmond", name: "Richmond", address: nil, phone: nil)
        try await server.store.write([
            CellWrite(.content, "manual-therapy", Columns.Content.kind, "page"),
            CellWrite(.content, "manual-therapy", Columns.Content.slug, "manual-therapy"),
            CellWrite(.content, "manual-therapy", Columns.Content.title, "Manual Therapy"),
        ])
    }

    deinit {
        if ProcessInfo.processInfo.environment["CLINIC_SYNC_SIM_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Simulations write many small transactions with `synchronous=FULL`: a RAM disk makes them fast.
    /// `$CLINIC_SYNC_SIM_DIR` overrides the parent folder.
    private static func makeDirectory() -> String {
        let environment = ProcessInfo.processInfo.environment
        let parent = environment["CLINIC_SYNC_SIM_DIR"]
            ?? (FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
        let unique = directoryCounter.withLock { counter -> Int in
            counter += 1
            return counter
        }
        return (parent as NSString).appendingPathComponent("clinic-sync-sim-\(getpid())-\(unique)-\(UInt32.random(in: 0...UInt32.max))")
    }

    private static let directoryCounter = LockedCounter()

    // MARK: Devices

    /// Enrolls a new device (a fresh replica file) at `branch`, through the simulated network.
    @discardableResult
    public func addDevice(_ name: String, branch: String, role: DeviceRole = .terminal, pageSize: UInt32 = 0, pushBatchSize: Int = 500) async throws -> String {
        precondition(device(name) == nil, "device \(name) exists")
        var generator = ids.source
        let code = Credentials.makeEnrollmentCode(using: &generator)
        _ = try await server.store.addDevice(
            branch: branch, name: name, role: role, codeHash: Credentials.hash(Credentials.normalizedCode(code)),
            codeExpiresAt: Date(timeIntervalSince1970: Double(time.milliseconds) / 1000 + 86_400))
        let clock = SkewedClock(time: time)
        let path = "\(directory)/\(name).sqlite"
        let replica = try openReplica(path, clock: clock)
        let transport = network.transport(for: name)
        let identity = try await replica.enroll(server: "sim://server", code: code, deviceName: name, transport: transport)
        let device = SimulatedDevice(name: name, branch: branch, role: role, path: path, clock: clock, transport: transport, replica: replica,
                                     pageSize: pageSize, pushBatchSize: pushBatchSize)
        device.replicaID = identity.replica
        device.lastKnownReplica = identity.replica
        device.lastHLC = try readHLC(device)
        devices.append(device)
        network.withState { $0.replicas[name] = identity.replica }
        network.log(name, "enrolled at \(branch) as \(role.name) \(identity.replica)")
        return name
    }

    func device(_ name: String) -> SimulatedDevice? { devices.first { $0.name == name } }

    func requireDevice(_ name: String) throws -> SimulatedDevice {
        guard let device = device(name) else { throw SimulationError("no device '\(name)'") }
        return device
    }

    private func openReplica(_ path: String, clock: SkewedClock) throws -> Replica {
        var replica = try Replica.open(at: path, clock: clock)
        if let mergeRule { replica.applier.decideWrite = mergeRule.decide }
        return replica
    }

    /// The device dies and comes back: its replica is reopened from the file, so only committed state survives.
    func restart(_ device: SimulatedDevice) throws {
        let replica = try openReplica(device.path, clock: device.clock)
        device.replica = replica
        device.engine = SyncEngine(replica: replica, transport: device.transport, logger: Self.quietLogger)
        device.engine.pageSize = device.pageSize
        device.engine.pushBatchSize = device.pushBatchSize
        deviceRestarts += 1
    }

    // MARK: Labels

    /// The enquiry id behind a label.
    public func enquiryID(_ label: String) -> String? { network.withState { $0.labels.id(ofEnquiry: label) } }

    /// The label of a row id (`e3`, `e3.n7`), or the id itself.
    public func label(of id: String) -> String { network.withState { $0.labels.label(id) } }

    /// The labels of the enquiries a device holds, sorted.
    func localEnquiries(_ device: SimulatedDevice) throws -> [String] {
        let ids = try device.replica.writer.read { db in try String.fetchAll(db, sql: "SELECT id FROM enquiry ORDER BY id") }
        return network.withState { state in ids.map { state.labels.label($0) } }.sorted(by: Self.labelOrder)
    }

    /// `e2` before `e10`.
    static func labelOrder(_ lhs: String, _ rhs: String) -> Bool {
        let left = Int(lhs.dropFirst()) ?? Int.max, right = Int(rhs.dropFirst()) ?? Int.max
        return left != right ? left < right : lhs < rhs
    }

    // MARK: Steps

    /// The trace so far.
    public var trace: [TraceEvent] { network.withState { $0.trace } }

    /// Sets the step number the next trace lines carry.
    func begin(step: Int) {
        network.withState { $0.step = step }
    }

    var currentStep: Int { network.withState { $0.step } }

    func log(_ actor: String, _ text: String, rows: Set<String> = []) {
        network.log(actor, text, rows: rows)
    }

    /// Performs one action and records it in the trace. Refusals by the replica (a deleted row, a row
    /// not held here) and failed syncs are outcomes, not errors.
    public func perform(_ action: Action) async throws {
        switch action {
        case .add(let name, let label):
            let device = try requireDevice(name)
            let id = ids.uuidString()
            let label = network.withState { $0.labels.newEnquiry(id: id, label: label.isEmpty ? nil : label) }
            let digits = String(ids.int(below: 1000))
            // Ofcom's drama range, like every number in fixtures/.
            let phone = "020 7946 0" + String(repeating: "0", count: 3 - digits.count) + digits
            let enquiry = NewEnquiry(
                name: "Patient \(label).", phone: phone, topic: ids.pick(["back pain", "sciatica", "neck pain", "posture"]),
                message: "Message about \(label).", preferredContact: ids.pick(Schema.contactMethods), consentToContact: true)
            try local(device, "add \(label)", rows: [label]) { try device.replica.enquiries.add(enquiry, id: id) }
        case .update(let name, let label, let status, let assignedTo):
            let device = try requireDevice(name)
            let fields = [status.map { "status=\($0)" }, assignedTo.map { "assigned_to=\($0)" }].compactMap { $0 }.joined(separator: " ")
            try local(device, "update \(label) \(fields)", rows: [label]) {
                try device.replica.enquiries.update(try self.requireEnquiry(label), status: status, assignedTo: assignedTo)
            }
        case .note(let name, let label, let note):
            let device = try requireDevice(name)
            let enquiryID = try requireEnquiry(label)
            let id = ids.uuidString()
            let noteLabel = network.withState { $0.labels.newNote(id: id, enquiry: enquiryID, label: note.isEmpty ? nil : note) }
            try local(device, "note \(noteLabel)", rows: [label]) {
                try device.replica.enquiries.addNote(to: enquiryID, body: "Note \(noteLabel) on \(label).", author: name, id: id)
            }
        case .erase(let name, let label):
            let device = try requireDevice(name)
            try local(device, "erase \(label)", rows: [label]) { try device.replica.enquiries.erase(try self.requireEnquiry(label)) }
        case .delete(let name, let label):
            let device = try requireDevice(name)
            try local(device, "delete \(label)", rows: [label]) { try device.replica.delete(.enquiry, try self.requireEnquiry(label)) }
        case .move(let name, let label, let branch):
            let device = try requireDevice(name)
            try local(device, "move \(label) to \(branch)", rows: [label]) {
                let id = try self.requireEnquiry(label)
                guard try device.replica.enquiries.get(id) != nil else { throw LocalRefusal(code: "not_held") }
                try device.replica.write(.enquiry, id, [(Columns.Enquiry.branch, .text(branch))])
            }
        case .sync(let name):
            try await sync(try requireDevice(name))
        case .crash(let name):
            let device = try requireDevice(name)
            try restart(device)
            log(name, "crashed and restarted (replica reopened from its file)")
        case .crashServer:
            try server.restart()
            log("server", "crashed and restarted (store reopened from its file)")
        case .skew(let name, let milliseconds):
            let device = try requireDevice(name)
            device.clock.skew = milliseconds
            let beyond = milliseconds > Int64(Self.maxClockDrift) ? " (beyond the drift bound)" : ""
            log(name, "clock set to true time \(SimulatedDuration.format(milliseconds))\(beyond)")
        case .isolate(let name):
            _ = try requireDevice(name)
            network.withState { _ = $0.partitioned.insert(name) }
            log("net", "\(name) partitioned from the server")
        case .heal(let name):
            network.withState { state in
                if let name { state.partitioned.remove(name) } else { state.partitioned.removeAll() }
            }
            log("net", name.map { "\($0) reconnected" } ?? "every partition healed")
        case .advance(let milliseconds):
            time.advance(by: milliseconds)
            if milliseconds >= 60_000 { log("sim", "\(SimulatedDuration.format(Int64(milliseconds))) pass") }
        case .deliverDelayed:
            await network.deliverDelayed()
        case .fault(let name, let fault):
            _ = try requireDevice(name)
            network.withState { $0.scripted[name, default: []].append(fault) }
            log("net", "\(name)'s next request: \(fault.rawValue)")
        case .backup(let name):
            try backUp(try requireDevice(name))
        case .rollback(let name):
            try rollBack(try requireDevice(name))
        case .backupServer:
            try backUpServer()
        case .restoreServer(let markRestored):
            try await restoreServer(markRestored: markRestored)
        case .poison(let name, let label, let value):
            let device = try requireDevice(name)
            let enquiryID = try requireEnquiry(label)
            let id = ids.uuidString()
            let noteLabel = network.withState { $0.labels.newNote(id: id, enquiry: enquiryID, label: nil) }
            try local(device, "note \(noteLabel) (\(value.rawValue) text)", rows: [label]) {
                try device.replica.enquiries.addNote(to: enquiryID, body: Self.poisonText(value, note: noteLabel, enquiry: label), author: name, id: id)
            }
        case .hostile(let request):
            try await sendHostile(request)
        }
        try checkClocks(of: action.device.flatMap(device))
    }

    func requireEnquiry(_ label: String) throws -> String {
        guard let id = enquiryID(label) else { throw SimulationError("no enquiry '\(label)'") }
        return id
    }

    /// A local edit on a device: one replica transaction, then the outbox entries it made are recorded.
    private func local(_ device: SimulatedDevice, _ text: String, rows: Set<String>, _ body: () throws -> Void) throws {
        do {
            try body()
            log(device.name, text, rows: rows)
        } catch let error as ReplicaError {
            log(device.name, "\(text): refused locally (\(error.code.rawValue))", rows: rows)
        } catch let error as LocalRefusal {
            log(device.name, "\(text): refused locally (\(error.code))", rows: rows)
        }
        try recordLocalWrites(device)
    }

    /// Records the outbox entries a device added since the last call, with what it had seen of each cell.
    func recordLocalWrites(_ device: SimulatedDevice) throws {
        // Writes made after the server re-assigned the replica id reach it under the new one.
        if let reassigned = network.withState({ $0.reassigned[device.name] }) { device.replicaID = reassigned }
        let after = device.recordedCounter
        let rows = try device.replica.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT counter, tbl, row, col, value, hlc, base_seq FROM sync_outbox WHERE counter > ? ORDER BY counter", arguments: [after])
        }
        guard !rows.isEmpty else { return }
        network.withState { state in
            for row in rows {
                guard let table = TableID(rawValue: UInt8(truncatingIfNeeded: row["tbl"] as Int64)) else { continue }
                let column: Int64 = row["col"]
                let value = Value.fromDatabaseValue(row["value"]) ?? .null
                let operation: Change.Operation =
                    column == 0 ? (value == .integer(2) ? .erase : .delete)
                    : .write(column: ColumnID(UInt8(truncatingIfNeeded: column)), value: value, baseSeq: UInt64(row["base_seq"] as Int64))
                let change = Change(table: table, row: row["row"], operation: operation,
                                    version: Version(hlc: HLC(databaseValue: row["hlc"]), replica: device.replicaID))
                state.knowledge.recordLocal(device: device.name, key: WriteKey(replica: device.replicaID, counter: UInt64(row["counter"] as Int64)),
                                            change: change, step: state.step)
            }
        }
        device.recordedCounter = rows.last!["counter"]
    }

    /// One sync cycle of a device; a failure is an outcome. A device that crashed mid-request restarts.
    func sync(_ device: SimulatedDevice) async throws {
        network.withState { $0.touched.removeAll() }
        let (outboxBefore, epochBefore) = try outboxAndEpoch(device)
        var text: String
        do {
            let summary = try await device.engine.sync()
            syncsSucceeded += 1
            lastSyncOutcome[device.name] = "ok"
            text = "sync ok: ↑\(summary.pushed)" + (summary.rejected > 0 ? " (\(summary.rejected) rejected)" : "")
                + " ↓\(summary.pulled)" + (summary.purged > 0 ? " purged \(summary.purged)" : "") + " in \(summary.roundTrips) round trip\(summary.roundTrips == 1 ? "" : "s")"
        } catch let error as SyncError {
            syncsFailed += 1
            lastSyncOutcome[device.name] = error.problem ?? error.code.rawValue
            text = "sync failed: \(error.code.rawValue)" + (error.problem.map { " (\($0))" } ?? "")
        }
        let (rows, crashed) = network.withState { state in (state.touched, state.crashed.remove(device.name) != nil) }
        log(device.name, text, rows: rows)
        if crashed {
            try restart(device)
            log(device.name, "restarted after crashing mid-sync (replica reopened from its file)")
        }
        let (outboxAfter, epochAfter) = try outboxAndEpoch(device)
        if let epochBefore, epochAfter != epochBefore {
            followRequeue(device, before: outboxBefore, after: outboxAfter, now: try identityReplica(device))
        }
        // Outbox entries a sync adds are re-sent versions (SPEC 7.9), not local writes: the server's
        // answers record them.
        device.recordedCounter = max(device.recordedCounter, try Self.highestCounter(device))
        if device.awaitsResupply, try hasResupplied(device) { device.awaitsResupply = false }
        try followReplicaChange(device)
        // A re-stamp (after a clock fix) rewrites outbox entries: pick up their new versions.
        try refreshPendingVersions(device)
    }

    /// A device's outbox (counter → cell and clock reading) and the store epoch it last saw.
    private func outboxAndEpoch(_ device: SimulatedDevice) throws -> ([Int64: OutboxCell], String?) {
        try device.replica.writer.read { db in
            var outbox: [Int64: OutboxCell] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT counter, tbl, row, col, hlc FROM sync_outbox") {
                outbox[row["counter"]] = OutboxCell(table: row["tbl"], row: row["row"], column: row["col"], hlc: row["hlc"])
            }
            return (outbox, try String.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'store_epoch'"))
        }
    }

    /// After a store restore the client re-queues what was pending under new counters, behind what it
    /// re-sends, with base seq 0 (SPEC 7.9): the simulator's record of each such write follows it.
    /// `now` is the replica id the device carries after the sync: a 409 in the same sync (SPEC 7.8) has
    /// already moved its pending records, and the answers under the new id made records, to that id.
    /// A 409 that ended the sync after the re-queue (the file still carries the old id) moved them to
    /// the id the server gave, which the file takes next cycle: they are looked for and kept there too.
    private func followRequeue(_ device: SimulatedDevice, before: [Int64: OutboxCell], after: [Int64: OutboxCell], now: ReplicaID) {
        let highestBefore = before.keys.max() ?? 0
        let newCounters = Dictionary(after.filter { $0.key > highestBefore }.map { ($0.value, $0.key) }, uniquingKeysWith: max)
        let newest = network.withState { $0.reassigned[device.name] } ?? now
        var replicas: [ReplicaID] = []
        for replica in [device.replicaID, now, newest] where !replicas.contains(replica) { replicas.append(replica) }
        network.withState { state in
            for (entry, replica) in before.sorted(by: { $0.key < $1.key }).flatMap({ entry in replicas.map { (entry, $0) } }) {
                let (counter, cell) = (entry.key, entry.value)
                let old = WriteKey(replica: replica, counter: UInt64(counter))
                guard var record = state.knowledge.writes[old], !record.isAccepted else { continue }
                if let order = state.knowledge.accepted.firstIndex(of: old) {
                    // Stored before the restore and a survivor: the restored store refused it in the
                    // request that brought the news, and the re-queued copy is what counts now.
                    record.status = .accepted(order: order)
                    state.knowledge.writes[old] = record
                    continue
                }
                state.knowledge.writes[old] = nil
                // Processed already under its new counter (then the server's answer made that record), or still pending.
                let processed = state.knowledge.writes.values.contains { other in
                    other.device == device.name && other.key.counter > UInt64(highestBefore) && OutboxCell(other.change) == cell
                }
                guard !processed, let next = newCounters[cell] else { continue }
                record.key = WriteKey(replica: newest, counter: UInt64(next))
                record.change.version.replica = newest
                if case .write(let column, let value, _) = record.change.operation { record.change.operation = .write(column: column, value: value, baseSeq: 0) }
                record.seen = []
                record.status = .pending
                state.knowledge.writes[record.key] = record
            }
        }
    }

    /// The client carries on under a new replica id when the server takes a push for one from a
    /// restored file (SPEC 7.8; here, a late request re-using counters the client had withdrawn):
    /// its pending writes are now the new id's, same counters, same clock readings.
    private func followReplicaChange(_ device: SimulatedDevice) throws {
        guard let current = try device.replica.identity()?.replica, current != device.lastKnownReplica else { return }
        device.lastKnownReplica = current
        // The file can lag the server by an id: when the push under the id it carried on as gets a second
        // 409 in the same cycle (a lost future used that id's counters too, or the retry after a re-issue,
        // SPEC 7.7, changed their readings), the client carries on once and hears of the next id in its
        // next cycle. Its writes reach the server under the newest id the server gave, where that 409
        // moved their records and new writes are recorded. Moved back to the file's id, they were
        // stranded: the server's answers under the newest id made fresh records that forgot what their
        // author had seen (false expected conflicts, seed 40009), and a store-epoch change re-queued
        // them without their records (never acknowledged, seed 40004).
        let target = network.withState { $0.reassigned[device.name] } ?? current
        device.replicaID = target
        let outbox = try device.replica.writer.read { db in try Int64.fetchAll(db, sql: "SELECT counter FROM sync_outbox") }
        network.withState { $0.knowledge.reassign(device: device.name, to: target, unanswered: Set(outbox.map(UInt64.init))) }
        log(device.name, "carries on as replica \(current)")
    }

    /// Outbox entries whose version changed since they were recorded (the client re-stamps versions
    /// refused for clock drift once its clock is fixed) are recorded under their new version.
    private func refreshPendingVersions(_ device: SimulatedDevice) throws {
        let rows = try device.replica.writer.read { db in try Row.fetchAll(db, sql: "SELECT counter, hlc FROM sync_outbox ORDER BY counter") }
        network.withState { state in
            for row in rows {
                let key = WriteKey(replica: device.replicaID, counter: UInt64(row["counter"] as Int64))
                guard var record = state.knowledge.writes[key], record.status == .pending else { continue }
                let hlc = HLC(databaseValue: row["hlc"])
                guard record.change.version.hlc != hlc else { continue }
                record.change.version.hlc = hlc
                state.knowledge.writes[key] = record
                state.knowledge.seen[device.name, default: [:]][CellKey(record.change), default: []].insert(record.change.version)
            }
        }
    }

    // MARK: Clocks (invariant 2), checked after every step

    func readCursor(_ device: SimulatedDevice) throws -> Int64 {
        try device.replica.writer.read { db in try SyncMeta.get("cursor", in: db) ?? 0 }
    }

    func readHLC(_ device: SimulatedDevice) throws -> HLC {
        HLC(databaseValue: try device.replica.writer.read { db in try SyncMeta.get("last_hlc", in: db) ?? 0 })
    }

    /// Checks `device`'s clock (every device's if nil) and the server's.
    private func checkClocks(of only: SimulatedDevice? = nil) throws {
        for device in only.map({ [$0] }) ?? devices {
            let now = try readHLC(device)
            let previous = device.lastHLC
            if now < previous {
                // Allowed only when the previous readings were refused for drift and the clock was
                // since fixed: the client then re-issues its unsent versions (see SyncEngine).
                let wall = device.clock.milliseconds()
                if previous.milliseconds <= wall + Self.maxClockDrift {
                    violations.append(Violation(check: "clock-monotonic", message: "\(device.name)'s clock went back from \(previous) to \(now)"))
                }
            }
            let received = network.withState { $0.knowledge.received[device.name] ?? .zero }
            if now < received {
                violations.append(Violation(check: "clock-monotonic", message: "\(device.name)'s clock \(now) is behind a reading it received, \(received)"))
            }
            device.lastHLC = now
        }
        let now = HLC(databaseValue: try serverDatabase().read { db in try SyncMeta.get("last_hlc", in: db) ?? 0 })
        if now < serverHLC {
            violations.append(Violation(check: "clock-monotonic", message: "the server's clock went back from \(serverHLC) to \(now)"))
        }
        serverHLC = now
    }

    /// A read-only connection to the server's file, for the checks (it survives server restarts).
    func serverDatabase() throws -> DatabaseQueue {
        if let serverReader { return serverReader }
        var configuration = Configuration()
        configuration.readonly = true
        let reader = try DatabaseQueue(path: server.path, configuration: configuration)
        serverReader = reader
        return reader
    }

    // MARK: Quiescence

    /// Syncs every device, round after round, until a round moves nothing (at most `maxRounds`).
    /// Returns the devices whose last sync failed.
    @discardableResult
    public func settle(maxRounds: Int = 8) async throws -> [String] {
        var failing: [String] = []
        for _ in 0..<maxRounds {
            failing = []
            let before = network.withState { $0.knowledge.accepted.count }
            var moved = false
            for device in devices {
                let cursor = try readCursor(device)
                let failuresBefore = syncsFailed
                try await sync(device)
                if syncsFailed > failuresBefore { failing.append(device.name) }
                if try readCursor(device) != cursor { moved = true }
            }
            let after = network.withState { $0.knowledge.accepted.count }
            if !moved && after == before { break }
        }
        try checkClocks()
        return failing
    }

    /// Heals every partition, fixes every clock, delivers held-back requests and switches faults off,
    /// then syncs everyone until a whole round moves nothing (no outbox left, no page waiting, no new
    /// seq anywhere): that last round is the second pass that proves it. Devices that still cannot
    /// sync are violations.
    public func quiesce() async throws {
        network.withState { state in
            state.randomFaults = []
            state.partitioned.removeAll()
            state.scripted.removeAll()
        }
        for device in devices { device.clock.skew = 0 }
        log("sim", "quiescence: partitions healed, clocks fixed, faults off")
        await network.deliverDelayed()
        let failing = try await settle()
        for name in failing {
            violations.append(Violation(check: "quiescence", message: "\(name) still cannot sync after every fault was healed and every clock fixed"))
        }
    }
}

/// A misuse of the simulator (an unknown device or label), not a finding about the code under test.
public struct SimulationError: Error, CustomStringConvertible {
    /// What was misused.
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// An outbox entry's cell and clock reading: what stays the same when the entry is re-queued.
struct OutboxCell: Hashable {
    var table: Int64
    var row: String
    var column: Int64
    var hlc: Int64

    init(table: Int64, row: String, column: Int64, hlc: Int64) {
        (self.table, self.row, self.column, self.hlc) = (table, row, column, hlc)
    }

    init(_ change: Change) {
        self.init(table: Int64(change.table.rawValue), row: change.row, column: Int64(change.column?.rawValue ?? 0),
                  hlc: change.version.hlc.databaseValue)
    }
}

/// The simulated device cannot do what it was asked (it does not hold the row).
struct LocalRefusal: Error {
    let code: String
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func withLock<T>(_ body: (inout Int) -> T) -> T { lock.withLock { body(&value) } }
}
