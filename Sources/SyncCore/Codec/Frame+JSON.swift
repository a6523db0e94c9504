import Foundation

/// The JSON rendering of frames used by `clinic-sync decode` and the golden vectors in protocol/vectors/.
extension Frame {
    /// Pretty-printed JSON with sorted keys: stable, so renderings can be compared byte for byte.
    public func jsonRendering() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Every member is a plain string, number, bool, array or object, so encoding cannot fail.
        let data = try! encoder.encode(FrameJSON(self))
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

private struct FrameJSON: Encodable {
    let frame: Frame
    init(_ frame: Frame) { self.frame = frame }

    enum Key: String, CodingKey {
        case type, version, replica, clock, cursor, pageLimit = "page_limit", changes, acknowledged, rejected
        case exits, more, code, deviceName = "device_name", token, branch, role
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(Int(FrameCodec.version), forKey: .version)
        switch frame {
        case .syncRequest(let request):
            try container.encode("sync_request", forKey: .type)
            try container.encode(request.replica.description, forKey: .replica)
            try container.encode(HLCJSON(request.clock), forKey: .clock)
            try container.encode(request.cursor, forKey: .cursor)
            try container.encode(request.pageLimit, forKey: .pageLimit)
            try container.encode(request.changes.map { ChangeJSON(change: $0.change, counter: $0.counter) }, forKey: .changes)
        case .syncResponse(let response):
            try container.encode("sync_response", forKey: .type)
            try container.encode(HLCJSON(response.clock), forKey: .clock)
            try container.encode(response.acknowledged, forKey: .acknowledged)
            try container.encode(response.rejected.map(RejectionJSON.init), forKey: .rejected)
            try container.encode(response.changes.map { ChangeJSON(change: $0.change, seq: $0.seq) }, forKey: .changes)
            try container.encode(response.exits.map(ExitJSON.init), forKey: .exits)
            try container.encode(response.cursor, forKey: .cursor)
            try container.encode(response.more, forKey: .more)
        case .enrollRequest(let request):
            try container.encode("enroll_request", forKey: .type)
            try container.encode(request.code, forKey: .code)
            try container.encode(request.deviceName, forKey: .deviceName)
        case .enrollResponse(let response):
            try container.encode("enroll_response", forKey: .type)
            try container.encode(response.token, forKey: .token)
            try container.encode(response.replica.description, forKey: .replica)
            try container.encode(response.branch, forKey: .branch)
            try container.encode(response.role.name, forKey: .role)
            try container.encode(HLCJSON(response.clock), forKey: .clock)
        }
    }
}

private struct HLCJSON: Encodable {
    let ms: UInt64
    let counter: UInt16
    init(_ hlc: HLC) {
        ms = hlc.milliseconds
        counter = hlc.counter
    }
}

private struct RejectionJSON: Encodable {
    let counter: UInt64
    let reason: String
    init(_ rejection: Rejection) {
        counter = rejection.counter
        reason = rejection.reason.name
    }
}

private struct ExitJSON: Encodable {
    let seq: UInt64
    let table: String
    let row: String
    init(_ exit: ScopeExit) {
        seq = exit.seq
        table = exit.table.name
        row = exit.row
    }
}

private struct ChangeJSON: Encodable {
    let change: Change
    var counter: UInt64? = nil
    var seq: UInt64? = nil

    enum Key: String, CodingKey {
        case counter, seq, table, row, op, column, value, baseSeq = "base_seq", hlc, replica
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(counter, forKey: .counter)
        try container.encodeIfPresent(seq, forKey: .seq)
        try container.encode(change.table.name, forKey: .table)
        try container.encode(change.row, forKey: .row)
        try container.encode(HLCJSON(change.version.hlc), forKey: .hlc)
        if seq != nil { try container.encode(change.version.replica.description, forKey: .replica) }
        switch change.operation {
        case .delete:
            try container.encode("delete", forKey: .op)
        case .erase:
            try container.encode("erase", forKey: .op)
        case .write(let column, let value, let baseSeq):
            try container.encode("write", forKey: .op)
            if let name = change.table.definition.column(column)?.name {
                try container.encode(name, forKey: .column)
            } else {
                try container.encode(column.rawValue, forKey: .column)
            }
            try container.encode(ValueJSON(value), forKey: .value)
            if counter != nil { try container.encode(baseSeq, forKey: .baseSeq) }
        }
    }
}

private struct ValueJSON: Encodable {
    let value: Value
    init(_ value: Value) { self.value = value }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case .null: try container.encodeNil()
        case .integer(let integer): try container.encode(["integer": integer])
        case .real(let real): try container.encode(["real": real])
        case .text(let text): try container.encode(["text": text])
        case .blob(let blob): try container.encode(["blob_hex": blob.map { String(format: "%02x", $0) }.joined()])
        }
    }
}
