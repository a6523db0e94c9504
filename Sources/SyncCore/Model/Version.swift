/// The version of a change: its clock reading, then its author. Totally ordered.
public struct Version: Hashable, Comparable, Sendable {
    public var hlc: HLC
    public var replica: ReplicaID

    public init(hlc: HLC, replica: ReplicaID) {
        self.hlc = hlc
        self.replica = replica
    }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        (lhs.hlc, lhs.replica) < (rhs.hlc, rhs.replica)
    }
}

extension Version: CustomStringConvertible {
    public var description: String { "\(hlc)@\(replica)" }
}
