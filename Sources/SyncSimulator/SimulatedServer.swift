import Foundation
import Logging
import SyncCore
import SyncServer

/// The real server store (one SQLite file in the run's folder) behind the real ``SyncEndpoint``.
/// A crash drops both and reopens the file: only what was committed survives.
final class SimulatedServer: @unchecked Sendable {
    let directory: String
    let clock: SkewedClock
    let random: SeededRandom
    let mergeRule: MergeRuleOverride?
    private let lock = NSLock()
    private var current: (store: SQLiteServerStore, endpoint: SyncEndpoint<SQLiteServerStore>)
    private(set) var restarts = 0

    init(directory: String, clock: SkewedClock, random: SeededRandom, mergeRule: MergeRuleOverride?) throws {
        self.directory = directory
        self.clock = clock
        self.random = random
        self.mergeRule = mergeRule
        current = try Self.open(directory: directory, clock: clock, random: random, mergeRule: mergeRule)
    }

    var store: SQLiteServerStore { lock.withLock { current.store } }
    var endpoint: SyncEndpoint<SQLiteServerStore> { lock.withLock { current.endpoint } }
    var path: String { (directory as NSString).appendingPathComponent(SQLiteServerStore.fileName) }

    /// Kills the server between two transactions and starts it again from its file.
    func restart() throws {
        try lock.withLock {
            // Drop the old store (and its connections) before the new one opens the file.
            current = try Self.open(directory: directory, clock: clock, random: random, mergeRule: mergeRule)
            restarts += 1
        }
    }

    /// Stops the server (its connections closed), runs `body` on its store's path, and starts it again.
    func withStopped(_ body: (String) throws -> Void) throws {
        try lock.withLock {
            try current.store.writerForTools.close()
            try body(path)
            current = try Self.open(directory: directory, clock: clock, random: random, mergeRule: mergeRule)
            restarts += 1
        }
    }

    private static func open(directory: String, clock: SkewedClock, random: SeededRandom, mergeRule: MergeRuleOverride?) throws
        -> (SQLiteServerStore, SyncEndpoint<SQLiteServerStore>)
    {
        var store = try SQLiteServerStore(directory: directory, clock: clock, random: random.source)
        if let mergeRule { store.applier.decideWrite = mergeRule.decide }
        var logger = Logger(label: "clinic-sync.simulator.server")
        logger.logLevel = .critical
        return (store, SyncEndpoint(store: store, random: random.source, logger: logger))
    }
}
