import Testing
@testable import SyncCore

@Suite("Merge rule")
struct MergeRuleTests {
    let a = ReplicaID(1), b = ReplicaID(2)

    func write(_ row: String, _ column: UInt8, _ value: Value, _ ms: UInt64, _ replica: ReplicaID) -> Change {
        Change(table: .enquiry, row: row, operation: .write(column: ColumnID(column), value: value, baseSeq: 0),
               version: Version(hlc: HLC(milliseconds: ms, counter: 0), replica: replica))
    }

    @Test func higherVersionWinsAndEqualClocksBreakOnReplica() {
        var state = MergedState()
        state.apply(write("r", 10, "booked", 5, a))
        state.apply(write("r", 10, "closed", 5, b))
        state.apply(write("r", 10, "new", 4, b))
        guard case .live(let cells) = state.rows[RowKey(.enquiry, "r")] else { Issue.record("row missing"); return }
        #expect(cells[ColumnID(10)]?.value == "closed")
    }

    @Test func deleteWinsOverLaterWrites() {
        var state = MergedState()
        let delete = Change(table: .enquiry, row: "r", operation: .delete, version: Version(hlc: HLC(milliseconds: 1, counter: 0), replica: a))
        state.apply(delete)
        state.apply(write("r", 3, "Ann", 99, b))
        #expect(state.rows[RowKey(.enquiry, "r")] == .deleted(Tombstone(version: delete.version, erased: false)))
        #expect(MergeRule.decide(write: delete.version, current: nil, tombstone: Tombstone(version: delete.version, erased: false))
            == .rowDeleted(Tombstone(version: delete.version, erased: false)))
    }

    @Test func eraseIsStickyWhateverTheOrder() {
        let early = Tombstone(version: Version(hlc: HLC(milliseconds: 1, counter: 0), replica: a), erased: true)
        let late = Tombstone(version: Version(hlc: HLC(milliseconds: 9, counter: 0), replica: b), erased: false)
        #expect(early.merged(with: late) == late.merged(with: early))
        #expect(early.merged(with: late).erased)
        #expect(early.merged(with: late).version == late.version)
    }

    /// Invariant 1: any order, any duplicates, same state.
    @Test(arguments: 0..<200)
    func anyOrderWithDuplicatesConverges(iteration: Int) {
        let seed = UInt64(0xC11_51C) &+ UInt64(iteration) &* 7919
        var rng = SeededGenerator(seed: seed)
        let replicas = (1...4).map { ReplicaID(UInt64($0)) }
        let rows = ["r1", "r2", "r3"]
        var changes: [Change] = []
        for _ in 0..<Int.random(in: 1...40, using: &rng) {
            let row = rows.randomElement(using: &rng)!
            let version = Version(hlc: HLC(milliseconds: UInt64.random(in: 1...20, using: &rng), counter: UInt16.random(in: 0...2, using: &rng)),
                                  replica: replicas.randomElement(using: &rng)!)
            let operation: Change.Operation
            switch Int.random(in: 0..<20, using: &rng) {
            case 0: operation = .delete
            case 1: operation = .erase
            default:
                operation = .write(column: ColumnID(UInt8.random(in: 1...3, using: &rng)),
                                   value: .integer(Int64.random(in: 0...5, using: &rng)), baseSeq: 0)
            }
            // The same version never carries two different values: a replica issues each reading once.
            if changes.contains(where: { $0.version == version && $0.row == row }) { continue }
            changes.append(Change(table: .enquiry, row: row, operation: operation, version: version))
        }
        var reference = MergedState()
        changes.forEach { reference.apply($0) }
        for _ in 0..<5 {
            var replay = changes + changes.filter { _ in Bool.random(using: &rng) }
            replay.shuffle(using: &rng)
            var state = MergedState()
            replay.forEach { state.apply($0) }
            #expect(state == reference, "seed \(seed): replay with clinic-sync's SeededGenerator(seed: \(seed))")
        }
    }
}
