/// The stored state of one cell, or of a row's tombstone, as the merge rule sees it.
public struct CellVersion: Hashable, Sendable {
    public var value: Value
    public var version: Version

    public init(value: Value, version: Version) {
        self.value = value
        self.version = version
    }
}

/// A row's tombstone: it was deleted (and maybe erased) at `version`.
public struct Tombstone: Hashable, Sendable {
    public var version: Version
    public var erased: Bool

    public init(version: Version, erased: Bool) {
        self.version = version
        self.erased = erased
    }

    /// Two tombstones of a row combine to the later version, erased if either was.
    public func merged(with other: Tombstone) -> Tombstone {
        Tombstone(version: max(version, other.version), erased: erased || other.erased)
    }
}

/// The one merge rule of ClinicSync (invariant 1), shared by server and terminals.
///
/// Per cell the higher version wins; a row delete wins over every cell write of that row. The rule
/// is a join on a semilattice — commutative, associative and idempotent — so applying one set of
/// changes in any order, with any duplicates, gives the same state.
public enum MergeRule {
    /// What applying a cell write does.
    public enum WriteDecision: Hashable, Sendable {
        /// The incoming write becomes the cell's value.
        case apply
        /// The stored version is newer; the incoming write loses.
        case keepCurrent
        /// The very same version is already stored.
        case duplicate
        /// The row is deleted: the write is refused, and the caller records it (never drops it silently).
        case rowDeleted(Tombstone)
    }

    /// Decides a cell write against what is stored for the cell and its row.
    public static func decide(write incoming: Version, current: Version?, tombstone: Tombstone?) -> WriteDecision {
        if let tombstone { return .rowDeleted(tombstone) }
        guard let current else { return .apply }
        if incoming == current { return .duplicate }
        return incoming > current ? .apply : .keepCurrent
    }

    /// The row's tombstone after a delete or erase arrives.
    public static func decide(delete incoming: Tombstone, current: Tombstone?) -> Tombstone {
        current.map { $0.merged(with: incoming) } ?? incoming
    }
}
