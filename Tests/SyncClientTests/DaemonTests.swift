import Foundation
import Logging
import ServiceLifecycle
import SyncClient
import SyncCore
import Testing

@Suite("Sync daemon")
struct DaemonTests {
    @Test func backoffDoublesWithJitterAndIsCapped() {
        let configuration = SyncDaemonConfiguration(interval: .seconds(30), initialBackoff: .seconds(2), maxBackoff: .seconds(60))
        var generator = SplitMix64(seed: 7)
        #expect(configuration.delay(afterFailures: 0, using: &generator) == .seconds(30))
        for failures in 1...12 {
            let nominal = min(Duration.seconds(2) * (1 << (failures - 1)), .seconds(60))
            let delay = configuration.delay(afterFailures: failures, using: &generator)
            #expect(delay >= nominal * 0.5 && delay <= nominal, "failure \(failures): \(delay)")
        }
    }

    @Test func notifiesSystemdOverItsSocket() throws {
        let path = NSTemporaryDirectory() + "notify-\(UUID().uuidString.prefix(8)).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"])
        #expect(notifier.isActive && notifier.watchdogInterval == .seconds(5))
        notifier.ready(status: "starting first sync")
        var buffer = [UInt8](repeating: 0, count: 256)
        let received = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(received > 0)
        #expect(String(decoding: buffer.prefix(max(received, 0)), as: UTF8.self) == "READY=1\nSTATUS=starting first sync")
        #expect(!SystemdNotifier(environment: [:]).isActive)
    }

    @Test func syncsOnStartAndStopsGracefully() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let b = try await harness.terminal("b")
            try a.replica.enquiries.add(NewEnquiry(name: "Test Patient", phone: "020 7946 0000"))
            let daemon = SyncDaemon(engine: a.engine, configuration: .init(interval: .milliseconds(200)), notifier: SystemdNotifier(environment: [:]), logger: Harness.logger)
            let group = ServiceGroup(configuration: .init(services: [daemon], logger: Harness.logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let deadline = ContinuousClock.now + .seconds(60)
                while try a.replica.status().pendingChanges > 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(try a.replica.status().pendingChanges == 0, "the daemon pushed the outbox")
                try b.replica.enquiries.add(NewEnquiry(name: "Another Patient", phone: "020 7946 0001"))
                try await b.sync()
                while try a.replica.enquiries.list().count < 2 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(try a.replica.enquiries.list().count == 2, "the daemon keeps pulling on its interval")
                let stopping = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                #expect(ContinuousClock.now - stopping < .seconds(30), "graceful stop between cycles, not after a timeout")
            }
        }
    }
}
