import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer

/// The compromised terminal: an enrolled device of the first branch whose token leaked. It has no
/// replica; it sends what it likes.
struct RogueDevice {
    var token: String
    var replica: ReplicaID
    var counter: UInt64 = 0
}

extension Simulation {
    /// A note's text for a poison value. It starts with the note's usual text, so the erasure check
    /// still finds it, and is filled up to the size the value calls for.
    static func poisonText(_ value: PoisonValue, note: String, enquiry: String) -> String {
        let marker = "Note \(note) on \(enquiry)."
        let room = Schema.maxValueBytes - marker.utf8.count
        switch value {
        case .oversized: return marker + String(repeating: "-", count: room + 1)
        case .atLimit: return marker + String(repeating: "-", count: room)
        case .empty: return ""
        case .controls: return marker + " a\u{0}b\r\n\t\u{FEFF}\u{202E}desrever\u{202C} e\u{301} \u{200D}\u{7F}\u{1B}[0m"
        case .wide:
            let emoji = "👩‍⚕️"
            return marker + String(repeating: "é", count: (room - emoji.utf8.count) / 2) + emoji
        }
    }

    /// Enrolls the compromised terminal the first time it is needed.
    private func rogue() async throws -> RogueDevice {
        if let rogueDevice { return rogueDevice }
        let branch = Self.branches[0]
        var generator = ids.source
        let code = Credentials.makeEnrollmentCode(using: &generator)
        _ = try await server.store.addDevice(
            branch: branch, name: Knowledge.rogue, role: .terminal, codeHash: Credentials.hash(Credentials.normalizedCode(code)),
            codeExpiresAt: Date(timeIntervalSince1970: Double(time.milliseconds) / 1000 + 86_400))
        let path = "\(directory)/\(Knowledge.rogue).enroll"
        let replica = try Replica.open(at: path, clock: SkewedClock(time: time))
        let identity = try await replica.enroll(server: "sim://server", code: code, deviceName: Knowledge.rogue,
                                                transport: network.transport(for: Knowledge.rogue))
        let token: String = try await replica.writer.read { db in try String.fetchOne(db, sql: "SELECT value FROM sync_meta WHERE key = 'device_token'") } ?? ""
        try replica.writer.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let device = RogueDevice(token: token, replica: identity.replica)
        rogueDevice = device
        log(Knowledge.rogue, "a compromised terminal enrolled at \(branch) as \(identity.replica)")
        return device
    }

    /// The compromised terminal sends one hostile request. Whatever it sends, the server answers
    /// (never 5xx, never a crash), and what it accepts is ordinary data everyone must converge on.
    func sendHostile(_ kind: HostileRequest) async throws {
        var rogue = try await rogue()
        if let reassigned = network.withState({ $0.reassigned[Knowledge.rogue] }) { rogue.replica = reassigned }
        let now = HLC(milliseconds: time.milliseconds, counter: 0)
        let labels = network.withState { $0.labels.enquiryIDs.keys.sorted(by: Self.labelOrder) }
        let target = ids.pick(labels).flatMap(enquiryID) ?? ids.uuidString()
        func status(_ counter: UInt64, baseSeq: UInt64, row: String = target, hlc: HLC = now) -> PushedChange {
            PushedChange(counter: counter, change: Change(table: .enquiry, row: row, operation: .write(column: Columns.Enquiry.status, value: .text(ids.pick(Schema.enquiryStatuses)!), baseSeq: baseSeq),
                                                          version: Version(hlc: hlc, replica: rogue.replica)))
        }
        var request = SyncRequest(replica: rogue.replica, clock: now, cursor: 0)
        var body: [UInt8]? = nil
        let largest = UInt64(Int64.max)
        switch kind {
        case .largestIntegers:
            rogue.counter += 1
            request.cursor = largest
            // Once in a while it burns its whole counter range; every later push of its is a replay or a 409.
            let counter = ids.int(below: 4) == 0 ? largest : rogue.counter
            request.changes = [status(counter, baseSeq: largest)]
            rogue.counter = max(rogue.counter, counter)
        case .pastTheBounds:
            request.cursor = ids.int(below: 2) == 0 ? largest + 1 : .max
            request.changes = [status(.max, baseSeq: .max)]
        case .farFutureClock:
            rogue.counter += 1
            request.clock = HLC(rawValue: largest)
            request.changes = [status(rogue.counter, baseSeq: 0, hlc: HLC(rawValue: largest))]
        case .flippedBytes:
            rogue.counter += 1
            request.changes = [status(rogue.counter, baseSeq: 0)]
            var frame = FrameCodec.encode(request)
            for _ in 0..<(1 + ids.int(below: 4)) {
                let at = ids.int(below: frame.count)
                frame[at] ^= UInt8(1 + ids.int(below: 255))
            }
            body = Deflate.compress(frame)
        case .truncated:
            rogue.counter += 1
            request.changes = [status(rogue.counter, baseSeq: 0)]
            let frame = FrameCodec.encode(request)
            body = Deflate.compress(Array(frame.prefix(ids.int(below: frame.count))))
        case .compressionBomb:
            body = Self.compressionBomb
        case .outOfScope:
            rogue.counter += 1
            let other = network.withState { state in
                state.labels.enquiryIDs.values.sorted().first { id in self.devices.contains { $0.branch != Self.branches[0] && (try? $0.replica.enquiries.get(id)) != nil } }
            }
            let unknownColumn = Change(table: .enquiry, row: target, operation: .write(column: ColumnID(200), value: .text("x"), baseSeq: 0),
                                       version: Version(hlc: now, replica: rogue.replica))
            let wrongType = Change(table: .enquiry, row: target, operation: .write(column: Columns.Enquiry.status, value: .blob([0xFF, 0xFE]), baseSeq: 0),
                                   version: Version(hlc: now, replica: rogue.replica))
            request.changes = [status(rogue.counter, baseSeq: 0, row: other ?? target),
                               PushedChange(counter: rogue.counter + 1, change: unknownColumn),
                               PushedChange(counter: rogue.counter + 2, change: wrongType)]
            rogue.counter += 2
        }
        rogueDevice = rogue
        let response = await network.sendRaw(from: Knowledge.rogue, body: body ?? Deflate.compress(FrameCodec.encode(request)), token: rogue.token)
        log(Knowledge.rogue, "sent \(kind.rawValue): answered \(response.status)")
    }

    /// 32 MiB of zeros: a few tens of kilobytes deflated. Built once per process.
    static let compressionBomb: [UInt8] = Deflate.compress([UInt8](repeating: 0, count: 32 << 20), level: 9)
}
