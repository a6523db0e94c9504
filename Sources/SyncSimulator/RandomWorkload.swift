import SyncCore

/// Draws a random run's actions from its seed: local edits, syncs and (where switched on) faults.
/// Choices depend only on the seed and on the replicas' own (deterministic) contents.
struct RandomWorkload {
    let random: SeededRandom
    let faults: FaultSet

    static let assignees = ["amy", "ben", "cat"]
    static let skews: [Int64] = [0, 0, 90_000, -120_000, 240_000, 600_000, 365 * 86_400_000, -3_600_000]

    private enum Kind: CaseIterable {
        case add, update, note, sync, erase, delete, move, crash, crashServer, skew, partition, deliverDelayed, longPause
        case backup, rollback, backupServer, restoreServer, poison, hostile
    }

    private func weight(_ kind: Kind) -> Int {
        switch kind {
        case .add: 10
        case .update: 22
        case .note: 12
        case .sync: 28
        case .erase: faults.contains(.erase) ? 2 : 0
        case .delete: faults.contains(.erase) ? 1 : 0
        case .move: faults.contains(.move) ? 4 : 0
        case .crash: faults.contains(.crash) ? 2 : 0
        case .crashServer: faults.contains(.crash) ? 1 : 0
        case .skew: faults.contains(.skew) ? 3 : 0
        case .partition: faults.contains(.partition) ? 4 : 0
        case .deliverDelayed: faults.contains(.reorder) ? 3 : 0
        case .longPause: 1
        case .backup: faults.contains(.rollback) ? 2 : 0
        case .rollback: faults.contains(.rollback) ? 1 : 0
        case .backupServer: faults.contains(.restore) ? 1 : 0
        case .restoreServer: faults.contains(.restore) ? 1 : 0
        case .poison: faults.contains(.poison) ? 2 : 0
        case .hostile: faults.contains(.extreme) ? 2 : 0
        }
    }

    /// The actions of one step: time passes, then one thing happens.
    func next(in simulation: Simulation) throws -> [Action] {
        var actions: [Action] = [.advance(milliseconds: UInt64(random.int(below: 20_000)))]
        let kinds = Kind.allCases
        let total = kinds.map(weight).reduce(0, +)
        var roll = random.int(below: total)
        var kind = Kind.sync
        for candidate in kinds {
            roll -= weight(candidate)
            if roll < 0 { kind = candidate; break }
        }
        let terminals = simulation.devices.filter { $0.role == .terminal }
        guard let terminal = random.pick(terminals) else { return actions }
        let held = try simulation.localEnquiries(terminal)
        switch kind {
        case .add:
            actions.append(.add(device: terminal.name, enquiry: ""))
        case .update:
            guard let enquiry = random.pick(held) else { actions.append(.add(device: terminal.name, enquiry: "")); break }
            let which = random.int(below: 10)
            let status = which < 7 ? random.pick(Schema.enquiryStatuses) : nil
            let assignee = which >= 6 ? random.pick(Self.assignees) : nil
            actions.append(.update(device: terminal.name, enquiry: enquiry, status: status, assignedTo: assignee))
        case .note:
            guard let enquiry = random.pick(held) else { actions.append(.add(device: terminal.name, enquiry: "")); break }
            actions.append(.note(device: terminal.name, enquiry: enquiry, note: ""))
        case .sync:
            actions.append(.sync(device: random.pick(simulation.devices)!.name))
        case .erase, .delete:
            guard let enquiry = random.pick(held) else { break }
            actions.append(kind == .erase ? .erase(device: terminal.name, enquiry: enquiry) : .delete(device: terminal.name, enquiry: enquiry))
        case .move:
            let editors = simulation.devices.filter { $0.role == .editor }
            guard let editor = random.pick(editors), let enquiry = random.pick(try simulation.localEnquiries(editor)),
                  let target = random.pick(Simulation.branches.filter { $0 != editor.branch })
            else { break }
            actions.append(.move(device: editor.name, enquiry: enquiry, to: target))
        case .crash:
            actions.append(.crash(device: terminal.name))
        case .crashServer:
            actions.append(.crashServer)
        case .skew:
            actions.append(.skew(device: terminal.name, milliseconds: random.pick(Self.skews)!))
        case .partition:
            let isolated = simulation.network.withState { $0.partitioned.contains(terminal.name) }
            actions.append(isolated ? .heal(device: terminal.name) : .isolate(device: terminal.name))
        case .deliverDelayed:
            actions.append(.deliverDelayed)
        case .backup:
            actions.append(.backup(device: terminal.name))
        case .rollback:
            // Not while the device still owes a restored server what it holds: that would be two losses at once.
            if terminal.backup != nil && !terminal.awaitsResupply { actions.append(.rollback(device: terminal.name)) }
        case .backupServer:
            actions.append(.backupServer)
        case .restoreServer:
            if simulation.serverBackup != nil { actions.append(.restoreServer(markRestored: random.int(below: 2) == 0)) }
        case .poison:
            guard let enquiry = random.pick(held) else { break }
            actions.append(.poison(device: terminal.name, enquiry: enquiry, random.pick(PoisonValue.allCases)!))
        case .hostile:
            actions.append(.hostile(random.pick(HostileRequest.allCases)!))
        case .longPause:
            // Hours to a week offline for everyone: HLCs and cursors must cope with a big jump.
            actions.append(.advance(milliseconds: UInt64(3_600_000 + random.int(below: 7 * 86_400_000))))
        }
        return actions
    }
}
