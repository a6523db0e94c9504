import Foundation
import Testing
@testable import SyncCore

@Suite("Frame codec")
struct CodecTests {
    @Test func vectorsDecodeAndReencodeByteForByte() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Vectors.directory.path).filter { $0.hasSuffix(".bin") }
        #expect(files.count >= Vectors.all.count, "every vector in Vectors.all is shipped")
        for file in files {
            let name = String(file.dropLast(4))
            let bytes = try [UInt8](Data(contentsOf: Vectors.directory.appendingPathComponent(file)))
            let frame = try FrameCodec.decode(bytes)
            #expect(FrameCodec.encode(frame) == bytes, "\(name) re-encodes byte for byte")
            let json = try String(contentsOf: Vectors.directory.appendingPathComponent(name + ".json"), encoding: .utf8)
            #expect(frame.jsonRendering() == json, "\(name).json is the rendering of \(name).bin")
            if let expected = Vectors.all.first(where: { $0.0 == name })?.1 {
                #expect(frame == expected, "\(name) decodes to the frame it was made from")
            }
        }
    }

    /// Run with CLINIC_SYNC_WRITE_VECTORS=1 to add vectors that are new in `Vectors.all`. Existing ones are never rewritten.
    @Test func addMissingVectors() throws {
        guard ProcessInfo.processInfo.environment["CLINIC_SYNC_WRITE_VECTORS"] == "1" else { return }
        try FileManager.default.createDirectory(at: Vectors.directory, withIntermediateDirectories: true)
        for (name, frame) in Vectors.all {
            let bin = Vectors.directory.appendingPathComponent(name + ".bin")
            guard !FileManager.default.fileExists(atPath: bin.path) else { continue }
            try Data(FrameCodec.encode(frame)).write(to: bin)
            try Data(frame.jsonRendering().utf8).write(to: Vectors.directory.appendingPathComponent(name + ".json"))
        }
    }

    /// Invariant 11: what a hostile server could send is refused where it is decoded.
    @Test func responseIntegersBeyondTheirBoundsAreMalformed() throws {
        let change = PulledChange(seq: 1, change: Change(table: .enquiry, row: "r", operation: .delete,
                                                         version: Version(hlc: HLC(rawValue: 5), replica: ReplicaID(7))))
        let good = SyncResponse(clock: HLC(rawValue: 10), acknowledged: 3, changes: [change], exits: [], cursor: 1, more: false)
        _ = try FrameCodec.decode(FrameCodec.encode(good))
        var cases: [(String, SyncResponse)] = []
        var bad = good; bad.cursor = 1 << 63; cases.append(("cursor", bad))
        bad = good; bad.acknowledged = .max; cases.append(("acknowledged", bad))
        bad = good; bad.rejected = [Rejection(counter: 1 << 63, reason: .invalid)]; cases.append(("rejected counter", bad))
        bad = good; bad.changes[0].seq = 1 << 63; cases.append(("seq", bad))
        bad = good; bad.exits = [ScopeExit(seq: .max, table: .enquiry, row: "r")]; cases.append(("exit seq", bad))
        bad = good; bad.clock = HLC(rawValue: .max); cases.append(("clock", bad))
        bad = good; bad.changes[0].change.version.hlc = HLC(rawValue: 1 << 63); cases.append(("change clock", bad))
        bad = good; bad.changes[0].change.operation = .write(column: ColumnID(1), value: .real(.nan), baseSeq: 0); cases.append(("NaN", bad))
        bad = good; bad.changes[0].change.operation = .write(column: ColumnID(1), value: .real(.infinity), baseSeq: 0); cases.append(("infinity", bad))
        for (name, response) in cases {
            #expect(throws: FrameError.self, "\(name)") { try FrameCodec.decode(FrameCodec.encode(response)) }
            do {
                _ = try FrameCodec.decode(FrameCodec.encode(response))
            } catch {
                #expect(error.code == .malformed, "\(name): \(error)")
            }
        }
    }

    @Test(arguments: 0..<100)
    func randomFramesRoundTrip(iteration: Int) throws {
        let seed = 0xF2A3E &+ UInt64(iteration)
        var rng = SeededGenerator(seed: seed)
        let frame = Self.randomFrame(&rng)
        let decoded = try FrameCodec.decode(FrameCodec.encode(frame))
        #expect(decoded == frame, "seed \(seed)")
    }

    @Test func uuidRowIDsTakeSixteenBytes() {
        let change = Change(table: .enquiry, row: Vectors.enquiry, operation: .delete, version: Vectors.version(0, Vectors.terminal))
        let request = SyncRequest(replica: Vectors.terminal, clock: Vectors.clock, cursor: 0, changes: [PushedChange(counter: 1, change: change)])
        var textual = request
        textual.changes[0].change.row = "enquiry-with-a-long-text-identifier!"
        #expect(FrameCodec.encode(textual).count - FrameCodec.encode(request).count == 37 + 1 - 17)
    }

    // MARK: Hostile input: each its own error, never a crash.

    let good = FrameCodec.encode(Vectors.all.first { $0.0 == "sync-request-new-enquiry" }!.1)

    @Test func truncatedFrameAtEveryLength() {
        for length in 0..<good.count {
            #expect(throws: FrameError.self) { try FrameCodec.decode(Array(good.prefix(length))) }
        }
        let error = #expect(throws: FrameError.self) { try FrameCodec.decode(Array(good.prefix(good.count - 3))) }
        #expect(error?.code == .truncated)
    }

    @Test func trailingBytes() {
        let error = #expect(throws: FrameError.self) { try FrameCodec.decode(good + [0]) }
        #expect(error?.code == .trailingBytes)
    }

    @Test func unknownVersion() {
        var bytes = good
        bytes[4] = 2
        let error = #expect(throws: FrameError.self) { try FrameCodec.decode(bytes) }
        #expect(error?.code == .unsupportedVersion)
        #expect(error?.description.contains("frame version 2") == true)
    }

    @Test func notAFrame() {
        let error = #expect(throws: FrameError.self) { try FrameCodec.decode(Array("{\"json\": true}".utf8)) }
        #expect(error?.code == .badMagic)
        let unknownType = #expect(throws: FrameError.self) { try FrameCodec.decode(FrameCodec.magic + [1, 9]) }
        #expect(unknownType?.code == .unknownFrameType)
    }

    @Test func aCountThatLies() {
        // An empty request claiming a billion changes.
        var writer = ByteWriter()
        writer.bytes = FrameCodec.magic + [1, FrameType.syncRequest.rawValue]
        writer.fixed64(1)
        writer.fixed64(Vectors.clock.rawValue)
        writer.varint(0)
        writer.varint(0)
        writer.varint(1_000_000_000)
        let error = #expect(throws: FrameError.self) { try FrameCodec.decode(writer.bytes) }
        #expect(error?.code == .countTooLarge)
    }

    @Test func randomGarbageNeverCrashes() {
        var rng = SeededGenerator(seed: 0xBAD)
        for _ in 0..<2_000 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? FrameCodec.decode(bytes)
        }
    }

    static func randomFrame(_ rng: inout SeededGenerator) -> Frame {
        func value() -> Value {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: .null
            case 1: .integer(Int64.random(in: .min ... .max, using: &rng))
            case 2: .real(Double.random(in: -1e9...1e9, using: &rng))
            case 3: .text(String((0..<Int.random(in: 0...40, using: &rng)).map { _ in "aé😀 z9".randomElement(using: &rng)! }))
            default: .blob((0..<Int.random(in: 0...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            }
        }
        func row() -> String {
            Bool.random(using: &rng) ? UUID().uuidString.lowercased() : "row-\(Int.random(in: 0...9, using: &rng))"
        }
        func operation() -> Change.Operation {
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: .delete
            case 1: .erase
            default: .write(column: ColumnID(UInt8.random(in: 1...ColumnID.maximum, using: &rng)), value: value(), baseSeq: UInt64.random(in: 0...5000, using: &rng))
            }
        }
        let clock = HLC(rawValue: UInt64.random(in: 0...(1 << 63), using: &rng))
        let replicas = (0..<3).map { _ in ReplicaID(UInt64.random(in: 1 ... .max, using: &rng)) }
        var counter = UInt64.random(in: 0...100, using: &rng)
        if Bool.random(using: &rng) {
            let changes = (0..<Int.random(in: 0...30, using: &rng)).map { _ -> PushedChange in
                counter += UInt64.random(in: 1...3, using: &rng)
                return PushedChange(counter: counter, change: Change(
                    table: TableID.allCases.randomElement(using: &rng)!, row: row(), operation: operation(),
                    version: Version(hlc: HLC(rawValue: UInt64.random(in: 0...(1 << 63), using: &rng)), replica: replicas[0])))
            }
            return .syncRequest(SyncRequest(replica: replicas[0], clock: clock, cursor: UInt64.random(in: 0...1_000_000, using: &rng),
                                            pageLimit: UInt32.random(in: 0...5000, using: &rng), changes: changes))
        }
        var seq: UInt64 = 0
        let changes = (0..<Int.random(in: 0...30, using: &rng)).map { _ -> PulledChange in
            seq += UInt64.random(in: 1...1000, using: &rng)
            var operation = operation()
            if case .write(let column, let value, _) = operation { operation = .write(column: column, value: value, baseSeq: 0) }
            return PulledChange(seq: seq, change: Change(
                table: TableID.allCases.randomElement(using: &rng)!, row: row(), operation: operation,
                version: Version(hlc: HLC(rawValue: UInt64.random(in: 0...(1 << 63), using: &rng)), replica: replicas.randomElement(using: &rng)!)))
        }
        return .syncResponse(SyncResponse(
            clock: clock, acknowledged: counter,
            rejected: [Rejection(counter: 3, reason: RejectionReason.allCases.randomElement(using: &rng)!)],
            changes: changes, exits: [ScopeExit(seq: seq + 1, table: .enquiry, row: row())],
            cursor: seq + 1, more: Bool.random(using: &rng)))
    }
}
