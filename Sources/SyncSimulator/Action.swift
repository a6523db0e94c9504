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
}

extension Action {
    /// The device the action concerns, if one.
    var device: String? {
        switch self {
        case .add(let device, _), .update(let device, _, _, _), .note(let device, _, _), .erase(let device, _), .delete(let device, _),
             .move(let device, _, _), .sync(let device), .crash(let device), .skew(let device, _), .isolate(let device), .fault(let device, _):
            device
        case .heal(let device): device
        case .crashServer, .advance, .deliverDelayed: nil
        }
    }
}
