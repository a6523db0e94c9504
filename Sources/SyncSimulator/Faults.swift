import Foundation

/// The faults a simulation may inject, each switchable (`--faults drop,dup,reorder,...`).
public struct FaultSet: OptionSet, Hashable, Sendable {
    /// One bit per fault.
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Requests and responses lost on the way.
    public static let drop = FaultSet(rawValue: 1 << 0)
    /// Requests delivered twice.
    public static let duplicate = FaultSet(rawValue: 1 << 1)
    /// Requests held back and delivered later, after newer ones (the client has long given up on them).
    public static let reorder = FaultSet(rawValue: 1 << 2)
    /// Terminals cut off from the server, and healed.
    public static let partition = FaultSet(rawValue: 1 << 3)
    /// Terminals and the server killed and restarted: only committed state survives.
    public static let crash = FaultSet(rawValue: 1 << 4)
    /// Per-terminal clock skew, within and beyond the server's drift bound.
    public static let skew = FaultSet(rawValue: 1 << 5)
    /// Enquiries moved between branches by an editor device.
    public static let move = FaultSet(rawValue: 1 << 6)
    /// Enquiries erased (UK GDPR) or deleted by a terminal.
    public static let erase = FaultSet(rawValue: 1 << 7)
    /// A terminal's file replaced by an older copy of itself (a restore from backup, a VM snapshot).
    public static let rollback = FaultSet(rawValue: 1 << 8)
    /// The server's store replaced by an older backup of itself, then restarted.
    public static let restore = FaultSet(rawValue: 1 << 9)
    /// Values at and past the limits: too large, empty, one character repeated, control characters.
    public static let poison = FaultSet(rawValue: 1 << 10)
    /// A compromised terminal's hostile requests: boundary integers, corrupt frames, compression bombs.
    public static let extreme = FaultSet(rawValue: 1 << 11)

    /// Every fault (the default).
    public static let all: FaultSet = [.drop, .duplicate, .reorder, .partition, .crash, .skew, .move, .erase, .rollback, .restore, .poison, .extreme]

    /// Names in the order `--faults` lists them.
    public static let names: [(String, FaultSet)] = [
        ("drop", .drop), ("dup", .duplicate), ("reorder", .reorder), ("partition", .partition),
        ("crash", .crash), ("skew", .skew), ("move", .move), ("erase", .erase),
        ("rollback", .rollback), ("restore", .restore), ("poison", .poison), ("extreme", .extreme),
    ]

    /// Parses `drop,dup,...`, `all` or `none`.
    public init?(list: String) {
        var set: FaultSet = []
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !name.isEmpty {
            switch name {
            case "all": set.formUnion(.all)
            case "none": break
            case "duplicate": set.insert(.duplicate)
            default:
                guard let fault = Self.names.first(where: { $0.0 == name })?.1 else { return nil }
                set.insert(fault)
            }
        }
        self = set
    }

    /// `drop,dup,...` in canonical order, or `none`.
    public var list: String {
        let names = Self.names.filter { contains($0.1) }.map(\.0)
        return names.isEmpty ? "none" : names.joined(separator: ",")
    }
}
