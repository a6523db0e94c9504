/// One change to a replicated row: the unit of the change log.
public struct Change: Hashable, Sendable {
    /// What a change does to its row.
    public enum Operation: Hashable, Sendable {
        /// Writes one cell. `baseSeq` is the server seq of the version the author had seen (0: none).
        case write(column: ColumnID, value: Value, baseSeq: UInt64)
        /// Deletes the row. Wins over every cell write of that row.
        case delete
        /// Deletes the row and every stored value of it, everywhere (UK GDPR erasure).
        case erase
    }

    public var table: TableID
    public var row: String
    public var operation: Operation
    public var version: Version

    public init(table: TableID, row: String, operation: Operation, version: Version) {
        self.table = table
        self.row = row
        self.operation = operation
        self.version = version
    }

    /// The column written, or nil for a row delete or erase.
    public var column: ColumnID? {
        if case .write(let column, _, _) = operation { return column }
        return nil
    }
}
