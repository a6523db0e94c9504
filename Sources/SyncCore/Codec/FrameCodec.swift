/// Encodes and decodes v1 frames, byte for byte as protocol/SPEC.md describes.
public enum FrameCodec {
    /// "CSYN": every frame starts with it.
    public static let magic: [UInt8] = [0x43, 0x53, 0x59, 0x4E]
    /// The frame format this build writes and reads.
    public static let version: UInt8 = 1

    static let deleteOp: UInt8 = 0
    static let eraseOp: UInt8 = 127
    static let sameRowFlag: UInt8 = 0x80

    // MARK: Encoding

    public static func encode(_ frame: Frame) -> [UInt8] {
        switch frame {
        case .syncRequest(let request): encode(request)
        case .syncResponse(let response): encode(response)
        case .enrollRequest(let request): encode(request)
        case .enrollResponse(let response): encode(response)
        }
    }

    public static func encode(_ request: SyncRequest) -> [UInt8] {
        var writer = header(.syncRequest, capacity: 32 + request.changes.count * 16)
        writer.fixed64(request.replica.rawValue)
        writer.fixed64(request.clock.rawValue)
        writer.varint(request.cursor)
        writer.varint(UInt64(request.pageLimit))
        writer.varint(UInt64(request.changes.count))
        var state = ChangeRunState(hlc: request.clock)
        var previousCounter: UInt64 = 0
        for pushed in request.changes {
            state.writeOpAndRow(pushed.change, into: &writer)
            writer.varint(pushed.counter &- previousCounter)
            previousCounter = pushed.counter
            state.writeHLC(pushed.change.version.hlc, into: &writer)
            if case .write(_, let value, let baseSeq) = pushed.change.operation {
                writer.value(value)
                writer.varint(baseSeq)
            }
        }
        return writer.bytes
    }

    public static func encode(_ response: SyncResponse) -> [UInt8] {
        var writer = header(.syncResponse, capacity: 64 + response.changes.count * 24)
        writer.fixed64(response.clock.rawValue)
        writer.varint(response.acknowledged)
        writer.varint(UInt64(response.rejected.count))
        for rejection in response.rejected {
            writer.varint(rejection.counter)
            writer.byte(rejection.reason.rawValue)
        }
        // Authors are listed once; each cell names its author by index.
        var replicas: [ReplicaID] = []
        var replicaIndex: [ReplicaID: Int] = [:]
        for pulled in response.changes where replicaIndex[pulled.change.version.replica] == nil {
            replicaIndex[pulled.change.version.replica] = replicas.count
            replicas.append(pulled.change.version.replica)
        }
        writer.varint(UInt64(replicas.count))
        for replica in replicas { writer.fixed64(replica.rawValue) }
        writer.varint(UInt64(response.changes.count))
        var state = ChangeRunState(hlc: response.clock)
        var previousSeq: UInt64 = 0
        for pulled in response.changes {
            state.writeOpAndRow(pulled.change, into: &writer)
            writer.varint(pulled.seq &- previousSeq)
            previousSeq = pulled.seq
            writer.varint(UInt64(replicaIndex[pulled.change.version.replica]!))
            state.writeHLC(pulled.change.version.hlc, into: &writer)
            if case .write(_, let value, _) = pulled.change.operation {
                writer.value(value)
            }
        }
        writer.varint(UInt64(response.exits.count))
        for exit in response.exits {
            writer.varint(exit.seq)
            writer.byte(exit.table.rawValue)
            writer.rowID(exit.row)
        }
        writer.varint(response.cursor)
        writer.byte(response.more ? 1 : 0)
        return writer.bytes
    }

    public static func encode(_ request: EnrollRequest) -> [UInt8] {
        var writer = header(.enrollRequest, capacity: 64)
        writer.string(request.code)
        writer.string(request.deviceName)
        return writer.bytes
    }

    public static func encode(_ response: EnrollResponse) -> [UInt8] {
        var writer = header(.enrollResponse, capacity: 96)
        writer.string(response.token)
        writer.fixed64(response.replica.rawValue)
        writer.string(response.branch)
        writer.byte(response.role.rawValue)
        writer.fixed64(response.clock.rawValue)
        return writer.bytes
    }

    private static func header(_ type: FrameType, capacity: Int) -> ByteWriter {
        var writer = ByteWriter(capacity: capacity)
        writer.bytes.append(contentsOf: magic)
        writer.byte(version)
        writer.byte(type.rawValue)
        return writer
    }

    // MARK: Decoding

    /// Decodes one whole frame; bytes after it are an error.
    public static func decode(_ bytes: [UInt8]) throws(FrameError) -> Frame {
        var reader = ByteReader(bytes)
        let type = try readHeader(&reader)
        let frame: Frame
        switch type {
        case .syncRequest: frame = .syncRequest(try decodeSyncRequest(&reader))
        case .syncResponse: frame = .syncResponse(try decodeSyncResponse(&reader))
        case .enrollRequest: frame = .enrollRequest(try decodeEnrollRequest(&reader))
        case .enrollResponse: frame = .enrollResponse(try decodeEnrollResponse(&reader))
        }
        guard reader.remaining == 0 else {
            throw reader.error(.trailingBytes, "\(reader.remaining) bytes after the end of the frame")
        }
        return frame
    }

    /// Decodes a frame that must be of one type.
    public static func decode<T>(_ bytes: [UInt8], as _: T.Type) throws(FrameError) -> T {
        let frame = try decode(bytes)
        let value: Any
        switch frame {
        case .syncRequest(let request): value = request
        case .syncResponse(let response): value = response
        case .enrollRequest(let request): value = request
        case .enrollResponse(let response): value = response
        }
        guard let typed = value as? T else {
            throw FrameError(.wrongFrameType, at: 5, "expected \(T.self), got \(type(of: value))")
        }
        return typed
    }

    private static func readHeader(_ reader: inout ByteReader) throws(FrameError) -> FrameType {
        let magic = try reader.raw(4, "magic")
        guard magic.elementsEqual(Self.magic) else { throw FrameError(.badMagic, at: 0, "no CSYN magic") }
        let version = try reader.byte("version")
        guard version == Self.version else {
            throw FrameError(.unsupportedVersion, at: 4, "frame version \(version); this peer speaks \(Self.version)")
        }
        let raw = try reader.byte("frame type")
        guard let type = FrameType(rawValue: raw) else {
            throw FrameError(.unknownFrameType, at: 5, "frame type \(raw)")
        }
        return type
    }

    private static func decodeSyncRequest(_ reader: inout ByteReader) throws(FrameError) -> SyncRequest {
        let replica = ReplicaID(try reader.fixed64("replica"))
        let clock = try reader.clock("clock")
        let cursor = try reader.sequenceNumber("cursor")
        let pageLimit = try reader.varint("page limit")
        guard pageLimit <= UInt64(UInt32.max) else { throw reader.error(.malformed, "page limit too large") }
        let count = try reader.count("change count", minimumSize: 3)
        var state = ChangeRunState(hlc: clock)
        var changes: [PushedChange] = []
        changes.reserveCapacity(count)
        var counter: UInt64 = 0
        for _ in 0..<count {
            let (op, table, row) = try state.readOpAndRow(&reader)
            let start = reader.offset
            let delta = try reader.varint("counter delta")
            let (next, overflow) = counter.addingReportingOverflow(delta)
            guard delta > 0 || changes.isEmpty, !overflow, next <= ByteReader.maxSequenceNumber else {
                throw FrameError(.malformed, at: start, "counters must increase and stay below 2^63")
            }
            counter = next
            let hlc = try state.readHLC(&reader)
            let operation = try readOperation(op, &reader, withBaseSeq: true, table: table)
            changes.append(PushedChange(
                counter: counter,
                change: Change(table: table, row: row, operation: operation, version: Version(hlc: hlc, replica: replica))))
        }
        return SyncRequest(replica: replica, clock: clock, cursor: cursor, pageLimit: UInt32(pageLimit), changes: changes)
    }

    private static func decodeSyncResponse(_ reader: inout ByteReader) throws(FrameError) -> SyncResponse {
        let clock = try reader.clock("clock")
        let acknowledged = try reader.sequenceNumber("acknowledged counter")
        let rejectedCount = try reader.count("rejection count", minimumSize: 2)
        var rejected: [Rejection] = []
        rejected.reserveCapacity(rejectedCount)
        for _ in 0..<rejectedCount {
            let counter = try reader.sequenceNumber("rejected counter")
            let start = reader.offset
            let raw = try reader.byte("rejection reason")
            guard let reason = RejectionReason(rawValue: raw) else {
                throw FrameError(.malformed, at: start, "unknown rejection reason \(raw)")
            }
            rejected.append(Rejection(counter: counter, reason: reason))
        }
        let replicaCount = try reader.count("replica count", minimumSize: 8)
        var replicas: [ReplicaID] = []
        replicas.reserveCapacity(replicaCount)
        for _ in 0..<replicaCount { replicas.append(ReplicaID(try reader.fixed64("replica"))) }
        let count = try reader.count("change count", minimumSize: 4)
        var state = ChangeRunState(hlc: clock)
        var changes: [PulledChange] = []
        changes.reserveCapacity(count)
        var seq: UInt64 = 0
        for _ in 0..<count {
            let (op, table, row) = try state.readOpAndRow(&reader)
            let start = reader.offset
            let delta = try reader.varint("seq delta")
            let (next, overflow) = seq.addingReportingOverflow(delta)
            guard delta > 0, !overflow, next <= ByteReader.maxSequenceNumber else {
                throw FrameError(.malformed, at: start, "seqs must increase and stay below 2^63")
            }
            seq = next
            let indexStart = reader.offset
            let index = try reader.varint("replica index")
            guard index < UInt64(replicas.count) else {
                throw FrameError(.malformed, at: indexStart, "replica index \(index) of \(replicas.count)")
            }
            let hlc = try state.readHLC(&reader)
            let operation = try readOperation(op, &reader, withBaseSeq: false, table: table)
            changes.append(PulledChange(
                seq: seq,
                change: Change(table: table, row: row, operation: operation, version: Version(hlc: hlc, replica: replicas[Int(index)]))))
        }
        let exitCount = try reader.count("exit count", minimumSize: 4)
        var exits: [ScopeExit] = []
        exits.reserveCapacity(exitCount)
        for _ in 0..<exitCount {
            let seq = try reader.sequenceNumber("exit seq")
            let table = try reader.table()
            exits.append(ScopeExit(seq: seq, table: table, row: try reader.rowID()))
        }
        let cursor = try reader.sequenceNumber("cursor")
        let moreStart = reader.offset
        let more = try reader.byte("more flag")
        guard more <= 1 else { throw FrameError(.malformed, at: moreStart, "more flag \(more)") }
        return SyncResponse(
            clock: clock, acknowledged: acknowledged, rejected: rejected, changes: changes, exits: exits,
            cursor: cursor, more: more == 1)
    }

    private static func decodeEnrollRequest(_ reader: inout ByteReader) throws(FrameError) -> EnrollRequest {
        EnrollRequest(code: try reader.string("code"), deviceName: try reader.string("device name"))
    }

    private static func decodeEnrollResponse(_ reader: inout ByteReader) throws(FrameError) -> EnrollResponse {
        let token = try reader.string("token")
        let replica = ReplicaID(try reader.fixed64("replica"))
        let branch = try reader.string("branch")
        let start = reader.offset
        let raw = try reader.byte("role")
        guard let role = DeviceRole(rawValue: raw) else { throw FrameError(.malformed, at: start, "unknown role \(raw)") }
        let clock = try reader.clock("clock")
        return EnrollResponse(token: token, replica: replica, branch: branch, role: role, clock: clock)
    }

    private static func readOperation(
        _ op: UInt8, _ reader: inout ByteReader, withBaseSeq: Bool, table: TableID
    ) throws(FrameError) -> Change.Operation {
        switch op {
        case deleteOp: return .delete
        case eraseOp: return .erase
        case 1...ColumnID.maximum:
            let value = try reader.value()
            let baseSeq = withBaseSeq ? try reader.sequenceNumber("base seq") : 0
            return .write(column: ColumnID(op), value: value, baseSeq: baseSeq)
        default:
            throw reader.error(.malformed, "unknown operation \(op)")
        }
    }
}

/// The run-length state shared by push and pull change lists: a change on the same row as the one
/// before it omits the table and row id, and clocks are sent as differences from the previous one.
private struct ChangeRunState {
    var hlc: HLC
    var table: TableID?
    var row: String?

    mutating func writeOpAndRow(_ change: Change, into writer: inout ByteWriter) {
        let op: UInt8 =
            switch change.operation {
            case .write(let column, _, _): column.rawValue
            case .delete: FrameCodec.deleteOp
            case .erase: FrameCodec.eraseOp
            }
        // Bytes, not String equality: canonically equivalent ids (é vs e + ◌́) are different rows to SQLite.
        if change.table == table, let row, change.row.utf8.elementsEqual(row.utf8) {
            writer.byte(op | FrameCodec.sameRowFlag)
        } else {
            writer.byte(op)
            writer.byte(change.table.rawValue)
            writer.rowID(change.row)
            table = change.table
            row = change.row
        }
    }

    mutating func writeHLC(_ next: HLC, into writer: inout ByteWriter) {
        writer.signedVarint(Int64(bitPattern: next.rawValue &- hlc.rawValue))
        hlc = next
    }

    mutating func readOpAndRow(_ reader: inout ByteReader) throws(FrameError) -> (UInt8, TableID, String) {
        let start = reader.offset
        let byte = try reader.byte("operation")
        let op = byte & ~FrameCodec.sameRowFlag
        if byte & FrameCodec.sameRowFlag != 0 {
            guard let table, let row else {
                throw FrameError(.malformed, at: start, "first change refers to a previous row")
            }
            return (op, table, row)
        }
        let table = try reader.table()
        let row = try reader.rowID()
        self.table = table
        self.row = row
        return (op, table, row)
    }

    mutating func readHLC(_ reader: inout ByteReader) throws(FrameError) -> HLC {
        let start = reader.offset
        let delta = try reader.signedVarint("clock delta")
        let next = hlc.rawValue &+ UInt64(bitPattern: delta)
        guard next <= ByteReader.maxSequenceNumber else { throw FrameError(.malformed, at: start, "clock above 2^63 - 1") }
        hlc = HLC(rawValue: next)
        return hlc
    }
}
