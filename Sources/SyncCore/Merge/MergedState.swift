/// Identifies a replicated row.
public struct RowKey: Hashable, Comparable, Sendable {
    public var table: TableID
    public var row: String

    public init(_ table: TableID, _ row: String) {
        self.table = table
        self.row = row
    }

    public static func < (lhs: RowKey, rhs: RowKey) -> Bool {
        (lhs.table.rawValue, lhs.row) < (rhs.table.rawValue, rhs.row)
    }
}

/// The state the merge rule defines, held in memory: the reference the SQLite stores are checked
/// against, and what the simulator's invariant checks compare.
public struct MergedState: Hashable, Sendable {
    /// A live row's cells, or a deleted row's tombstone.
    public enum Row: Hashable, Sendable {
        case live([ColumnID: CellVersion])
        case deleted(Tombstone)
    }

    public private(set) var rows: [RowKey: Row] = [:]

    public init() {}

    public mutating func apply(_ change: Change) {
        let key = RowKey(change.table, change.row)
        let existing = rows[key]
        switch change.operation {
        case .write(let column, let value, _):
            var cells: [ColumnID: CellVersion] = [:]
            var tombstone: Tombstone? = nil
            switch existing {
            case .live(let current): cells = current
            case .deleted(let current): tombstone = current
            case nil: break
            }
            switch MergeRule.decide(write: change.version, current: cells[column]?.version, tombstone: tombstone) {
            case .apply:
                cells[column] = CellVersion(value: value, version: change.version)
                rows[key] = .live(cells)
            case .keepCurrent, .duplicate, .rowDeleted:
                // Stores record a write that met a deleted row as a conflict; the row state is the same.
                break
            }
        case .delete, .erase:
            let incoming = Tombstone(version: change.version, erased: change.operation == .erase)
            var current: Tombstone? = nil
            if case .deleted(let tombstone) = existing { current = tombstone }
            rows[key] = .deleted(MergeRule.decide(delete: incoming, current: current))
        }
    }
}
