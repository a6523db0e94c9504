import SyncCore

/// One cell of a replicated row (column 0: the row's tombstone).
struct CellKey: Hashable, Comparable, Sendable {
    var table: TableID
    var row: String
    var column: UInt8

    init(_ change: Change) {
        table = change.table
        row = change.row
        column = change.column?.rawValue ?? 0
    }

    static func < (lhs: CellKey, rhs: CellKey) -> Bool {
        (lhs.table.rawValue, lhs.row, lhs.column) < (rhs.table.rawValue, rhs.row, rhs.column)
    }

    var columnName: String {
        column == 0 ? "(row)" : table.definition.column(ColumnID(column))?.name ?? String(column)
    }
}

/// A local write, named as its outbox names it: the author's replica and the outbox counter.
struct WriteKey: Hashable, Comparable, Sendable {
    var replica: ReplicaID
    var counter: UInt64

    static func < (lhs: WriteKey, rhs: WriteKey) -> Bool { (lhs.replica, lhs.counter) < (rhs.replica, rhs.counter) }
}

/// A local write and its fate, as the simulator saw it happen (not as any store reports it).
struct WriteRecord: Sendable {
    enum Status: Hashable, Sendable {
        case pending
        /// Stored by the server; `order` is its place in the server's processing order.
        case accepted(order: Int)
        case rejected(RejectionReason)
        /// Gone with its author's file (put back from an older copy) before the server stored it.
        case discarded
    }

    var device: String
    var key: WriteKey
    var change: Change
    /// The versions of this cell the author had received or written before it wrote this one.
    var seen: Set<Version>
    var step: Int
    var status: Status = .pending

    var isAccepted: Bool {
        if case .accepted = status { return true }
        return false
    }
}

/// A conflict the server must have recorded: two writes to one cell, neither author having seen the other's.
struct ExpectedConflict: Hashable, Sendable {
    var cell: CellKey
    var winner: Version
    var loser: Version
    /// The winner is the row's tombstone.
    var rowDeleted: Bool
    var step: Int
}

/// What the simulator knows independently of the stores: every local write with what its author had
/// seen, which writes the server acknowledged, and the state the merge rule defines for them (the oracle).
struct Knowledge: Sendable {
    var writes: [WriteKey: WriteRecord] = [:]
    /// The order the server stored acknowledged writes in.
    var accepted: [WriteKey] = []
    var serverAcknowledged: [ReplicaID: UInt64] = [:]
    /// Per device: the versions of each cell it has received or written.
    var seen: [String: [CellKey: Set<Version>]] = [:]
    /// Per device: the highest reading it has received (pulled versions, server clocks) or had stored by
    /// the server: its clock may never fall below it.
    var received: [String: HLC] = [:]
    /// The merge of every acknowledged change to enquiries and notes, by SyncCore's own rule.
    var oracle = MergedState()
    var expectedConflicts: [ExpectedConflict] = []
    /// Writes of a file that was rolled back, moved to keys its new writes cannot reuse, by their old key.
    var ghosts: [WriteKey: [WriteKey]] = [:]
    /// The device name of the compromised terminal (its writes claim what they like about what they saw).
    static let rogue = "rogue"
    /// Counters from here on name ghosts (real counters stay far below).
    static let ghostBase: UInt64 = 1 << 62

    /// `device`'s file was replaced by an older copy whose outbox had issued counters up to `counter`.
    /// Its later writes keep their fate under ghost keys, so the restored file's new writes (which
    /// reuse the counters) are told apart; those the server never stored are gone with the file.
    /// What it had seen and received since is forgotten with it.
    mutating func rollBack(device: String, above counter: Int64, seen: [CellKey: Set<Version>], received: HLC) {
        let later = writes.filter { $0.value.device == device && $0.key.counter > UInt64(counter) && $0.key.counter < Self.ghostBase }.keys.sorted()
        let total = ghosts.values.reduce(0) { $0 + $1.count }
        for (index, key) in later.enumerated() {
            var record = writes.removeValue(forKey: key)!
            let ghost = WriteKey(replica: key.replica, counter: Self.ghostBase + UInt64(total + index))
            if record.status == .pending { record.status = .discarded }
            record.key = ghost
            writes[ghost] = record
            if let position = accepted.firstIndex(of: key) { accepted[position] = ghost }
            ghosts[key, default: []].append(ghost)
        }
        self.seen[device] = seen
        self.received[device] = received
    }

    /// The server's store was replaced by a backup taken when `backup.accepted` writes were stored.
    /// Writes stored since survive where their author's file still holds their version (it re-sends
    /// it, SPEC 7.9); the others are lost with the store. The oracle becomes the merge of what survives.
    mutating func restoreServer(to backup: ServerBackup, held: [String: Set<HeldVersion>]) {
        // A stored write whose record the bookkeeping lost stays listed, so the checks report it.
        let lost = accepted.filter { writes[$0] == nil }
        let kept = accepted.prefix(backup.accepted).filter { writes[$0] != nil }
        let survivors = accepted.dropFirst(backup.accepted).filter { writes[$0] != nil }.filter { key in
            let change = writes[key]!.change
            let cell = HeldVersion(table: change.table, row: change.row, column: change.column?.rawValue ?? 0, version: change.version)
            return held[writes[key]!.device]?.contains(cell) ?? false
        }
        expectedConflicts = Array(expectedConflicts.prefix(backup.expectedConflicts))
        serverAcknowledged = backup.acknowledged
        // A note can be stored again only under a live enquiry: one whose enquiry survives only as a
        // tombstone (its author deleted it, so holds no cells to re-send) is refused and dead-lettered.
        let rows = Array(kept) + survivors.filter { writes[$0]!.change.table != .enquiryNote }
        oracle = MergedState()
        for key in rows { feedOracle(writes[key]!, step: writes[key]!.step, expectingConflicts: false) }
        let noteEnquiry = Dictionary(writes.values.compactMap { write -> (String, String)? in
            guard write.change.table == .enquiryNote, case .write(let column, .text(let enquiry), _) = write.change.operation,
                  column == Columns.Note.enquiry else { return nil }
            return (write.change.row, enquiry)
        }, uniquingKeysWith: { first, _ in first })
        let notes = survivors.filter { key in
            guard writes[key]!.change.table == .enquiryNote, let enquiry = noteEnquiry[writes[key]!.change.row] else { return false }
            if case .live = oracle.rows[RowKey(.enquiry, enquiry)] { return true }
            return false
        }
        for key in notes { feedOracle(writes[key]!, step: writes[key]!.step, expectingConflicts: false) }
        accepted = rows + notes + lost
    }

    /// The server gave `device` a new replica id (SPEC 7.8): its pending writes will reach the server
    /// under it, same counters, same clock readings, once the device hears of it. So does a write the
    /// server refused whose answer the file never had (a copy put back from before it): still in the
    /// outbox (`unanswered`), or already pushed under the new id, it is judged again there.
    mutating func reassign(device: String, to replica: ReplicaID, unanswered: Set<UInt64> = []) {
        let moving = writes.filter { entry in
            guard entry.value.device == device, entry.key.replica != replica else { return false }
            switch entry.value.status {
            case .pending:
                return true
            case .rejected:
                let again = writes[WriteKey(replica: replica, counter: entry.key.counter)]
                return entry.key.counter < Self.ghostBase
                    && (unanswered.contains(entry.key.counter) || again.map { $0.change.isSameWrite(as: entry.value.change) } == true)
            default:
                return false
            }
        }
        for (key, record) in moving {
            var moved = record
            moved.key = WriteKey(replica: replica, counter: key.counter)
            moved.change.version.replica = replica
            writes[key] = nil
            // Heard late (several 409s in flight): the server may already have processed it under the new id.
            if let processed = writes[moved.key], processed.change.isSameWrite(as: moved.change) { continue }
            writes[moved.key] = moved
            seen[device, default: [:]][CellKey(moved.change), default: []].insert(moved.change.version)
        }
    }

    /// A local write happened: remember what its author had seen of the cell.
    mutating func recordLocal(device: String, key: WriteKey, change: Change, step: Int) {
        let cell = CellKey(change)
        let seenBefore = seen[device]?[cell] ?? []
        writes[key] = WriteRecord(device: device, key: key, change: change, seen: seenBefore, step: step)
        seen[device, default: [:]][cell, default: []].insert(change.version)
    }

    /// The server processed a push (whether or not its answer reached the device).
    mutating func recordProcessed(device: String, request: SyncRequest, response: SyncResponse, step: Int) {
        let previous = serverAcknowledged[request.replica] ?? 0
        let rejected = Dictionary(response.rejected.map { ($0.counter, $0.reason) }, uniquingKeysWith: { first, _ in first })
        for pushed in request.changes where pushed.counter > previous && pushed.counter <= response.acknowledged {
            var key = WriteKey(replica: request.replica, counter: pushed.counter)
            var isGhost = false
            if writes[key].map({ !$0.change.isSameWrite(as: pushed.change) }) ?? true, let candidates = ghosts[key] {
                // A request sent before its author's file was rolled back, arriving late.
                isGhost = true
                if let match = candidates.first(where: { writes[$0]!.change.isSameWrite(as: pushed.change) }) {
                    key = match
                } else {
                    key = WriteKey(replica: key.replica, counter: Self.ghostBase + UInt64(ghosts.values.reduce(0) { $0 + $1.count }))
                    ghosts[WriteKey(replica: request.replica, counter: pushed.counter), default: []].append(key)
                }
            }
            if writes[key] == nil {
                writes[key] = WriteRecord(device: device, key: key, change: pushed.change, seen: [], step: step)
            } else if writes[key]!.change != pushed.change {
                // Re-issued under a new version after its clock was fixed: what the server got is what counts.
                writes[key]!.change = pushed.change
                seen[device, default: [:]][CellKey(pushed.change), default: []].insert(pushed.change.version)
            }
            if let reason = rejected[pushed.counter] {
                writes[key]!.status = .rejected(reason)
            } else {
                writes[key]!.status = .accepted(order: accepted.count)
                accepted.append(key)
                if !isGhost { received[device] = max(received[device] ?? .zero, pushed.change.version.hlc) }
                feedOracle(writes[key]!, step: step)
            }
        }
        serverAcknowledged[request.replica] = max(previous, response.acknowledged)
    }

    /// A response reached its device, which applied it.
    mutating func recordHeard(device: String, response: SyncResponse) {
        var highest = max(received[device] ?? .zero, response.clock)
        for pulled in response.changes {
            seen[device, default: [:]][CellKey(pulled.change), default: []].insert(pulled.change.version)
            highest = max(highest, pulled.change.version.hlc)
        }
        received[device] = highest
    }

    /// Applies an acknowledged change to the oracle, first noting the conflict the server must record
    /// if the change meets a concurrent version (SPEC 7.2), decided from what its author had seen.
    private mutating func feedOracle(_ write: WriteRecord, step: Int, expectingConflicts: Bool = true) {
        let change = write.change
        // A re-sent version's author saw everything (SPEC 7.9); a compromised terminal's claims are its own.
        let expectingConflicts = expectingConflicts && write.device != Self.rogue && change.baseSeq != UInt64(Int64.max)
        guard change.table == .enquiry || change.table == .enquiryNote else { return }
        let key = RowKey(change.table, change.row)
        if case .write(let column, let value, _) = change.operation {
            switch oracle.rows[key] {
            case .deleted(let tombstone):
                if !tombstone.erased, expectingConflicts {
                    expectedConflicts.append(ExpectedConflict(cell: CellKey(change), winner: tombstone.version, loser: change.version, rowDeleted: true, step: step))
                }
            case .live(let cells):
                if expectingConflicts, let current = cells[column], current.version != change.version, current.version.replica != change.version.replica,
                   !write.seen.contains(current.version), current.value != value
                {
                    let (winner, loser) = change.version > current.version ? (change.version, current.version) : (current.version, change.version)
                    expectedConflicts.append(ExpectedConflict(cell: CellKey(change), winner: winner, loser: loser, rowDeleted: false, step: step))
                }
            case nil:
                break
            }
            oracle.apply(change)
        } else {
            oracle.apply(change)
            // The server erases an enquiry's notes with it, at the enquiry's tombstone.
            guard change.table == .enquiry, case .deleted(let tombstone) = oracle.rows[key], tombstone.erased else { return }
            let notes = oracle.rows.keys.filter { note in
                guard note.table == .enquiryNote, case .live(let cells) = oracle.rows[note] else { return false }
                return cells[Columns.Note.enquiry]?.value == .text(change.row)
            }.sorted()
            for note in notes {
                oracle.apply(Change(table: .enquiryNote, row: note.row, operation: .erase, version: tombstone.version))
            }
        }
    }
}

extension Change {
    /// The same write, whatever its clock reading (a re-issue after a clock fix changes only that).
    func isSameWrite(as other: Change) -> Bool {
        table == other.table && row == other.row && operation == other.operation
    }

    /// The base seq a write carries (0 for deletes and erasures).
    var baseSeq: UInt64 {
        if case .write(_, _, let baseSeq) = operation { return baseSeq }
        return 0
    }
}
