import SyncCore

/// One thing that happens in a simulation. Random runs draw them from the seed; scenario files list
/// them by hand; the test kit calls them. Rows are named by labels (`e1`), never by their UUIDs.
public enum Action: Hashable, Sendable {
    /// A terminal takes a new enquiry.
    case add(device: String, enquiry: String)
    /// A terminal changes an enquiry's status and/or who it is assigned to.
    case update(device: String, enquiry: String, status: String?, assignedTo: String?)
    /// A note is added to an enquiry.
    case note(device: String, enquiry: String, note: String)
    /// An enquiry is erased (UK GDPR): it and its notes disappear everywhere.
    case erase(device: String, enquiry: String)
    /// An enquiry is deleted (a tombstone, not an erasure).
    case delete(device: String, enquiry: String)
    /// An editor device moves an enquiry to another branch.
    case move(device: String, enquiry: String, to: String)
    /// A device runs one sync cycle.
    case sync(device: String)
    /// A device is killed and restarted: its replica is reopened from its file.
    case crash(device: String)
    /// The server is killed and restarted: its store is reopened from its file.
    case crashServer
    /// A device's wall clock is set this far from true time (0 fixes it).
    case skew(device: String, milliseconds: Int64)
    /// A device loses its link to the server.
    case isolate(device: String)
    /// A device's link comes back (nil: every device's).
    case heal(device: String?)
    /// True time moves on.
    case advance(milliseconds: UInt64)
    /// Requests the network held back arrive now, after everything sent since.
    case deliverDelayed
    /// The device's next request meets this fault.
    case fault(device: String, NetworkFault)
    /// A copy of a device's file is taken (a nightly backup, a VM snapshot).
    case backup(device: String)
    /// A device's file is replaced by its last backup and the device restarts on it.
    case rollback(device: String)
    /// A copy of the server's store is taken.
    case backupServer
    /// The server's store is replaced by its last backup and the server restarts; with `markRestored`
    /// the operator then runs `admin mark-restored`.
    case restoreServer(markRestored: Bool)
    /// A terminal adds a note whose text is at or past the limits.
    case poison(device: String, enquiry: String, PoisonValue)
    /// A compromised terminal sends a hostile request.
    case hostile(HostileRequest)
}

/// Text values at and past the limits (SPEC 9).
public enum PoisonValue: String, Hashable, Sendable, CaseIterable, Codable {
    /// One byte over the per-value limit: refused at write time.
    case oversized
    /// Exactly the per-value limit, one character repeated (a pasted line of dashes).
    case atLimit = "at_limit"
    /// An empty string.
    case empty
    /// Control and format characters: NUL, CR, tab, a byte-order mark, a right-to-left override, joiners.
    case controls
    /// Multi-byte characters up to the limit (two-byte letters, four-byte emoji).
    case wide
}

/// What a compromised terminal (an enrolled device whose token leaked) sends.
public enum HostileRequest: String, Hashable, Sendable, CaseIterable, Codable {
    /// Cursor, counter and base seq at 2^63 − 1, the largest the protocol allows.
    case largestIntegers = "largest_integers"
    /// Cursor and counter at 2^63 and 2^64 − 1, past what the protocol allows.
    case pastTheBounds = "past_the_bounds"
    /// A clock reading at the top of the range.
    case farFutureClock = "far_future_clock"
    /// A valid frame with random bytes flipped.
    case flippedBytes = "flipped_bytes"
    /// A valid frame cut short.
    case truncated
    /// 64 MiB of zeros deflated to a few kilobytes.
    case compressionBomb = "compression_bomb"
    /// Writes to another branch's enquiry and to rows and columns that do not exist.
    case outOfScope = "out_of_scope"
}

extension Action {
    /// The device the action concerns, if one.
    var device: String? {
        switch self {
        case .add(let device, _), .update(let device, _, _, _), .note(let device, _, _), .erase(let device, _), .delete(let device, _),
             .move(let device, _, _), .sync(let device), .crash(let device), .skew(let device, _), .isolate(let device), .fault(let device, _),
             .backup(let device), .rollback(let device), .poison(let device, _, _):
            device
        case .heal(let device): device
        case .crashServer, .advance, .deliverDelayed, .backupServer, .restoreServer, .hostile: nil
        }
    }
}
