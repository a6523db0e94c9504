import Foundation
import Testing

/// The server under systemd (`Type=notify`, issue 13): ready only once listening, watchdog pings
/// while its store answers, STOPPING on SIGTERM. Runs the built binary, as systemd would.
@Suite("systemd")
struct SystemdTests {
    /// Waits (polling, up to `seconds`) for a message on `socket` that satisfies `match`.
    static func await(_ socket: DaemonTests.NotifySocket, seconds: Double = 60, _ match: (String) -> Bool) async throws -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let message = socket.drain().first(where: match) { return message }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Whether a TCP connection to 127.0.0.1:`port` is accepted.
    static func accepts(port: Int) -> Bool {
        let fd = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    @Test func theServerIsReadyWhenListeningPingsTheWatchdogAndSaysStopping() async throws {
        let binary = try #require(ReadmeTests.binary, "build clinic-sync first")
        let socket = try DaemonTests.NotifySocket()
        let directory = try CLIContractTests.scratch()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--data", directory + "/data", "--port", "0", "--log-level", "error"]
        process.environment = ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "200000", "PATH": "/usr/bin:/bin"]
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let ready = try #require(try await Self.await(socket) { $0.hasPrefix("READY=1") })
        let port = try #require(ready.split(separator: ":").last.flatMap { Int($0) }, "READY names the bound port: \(ready)")
        #expect(Self.accepts(port: port), "listening when READY was sent")
        #expect(try await Self.await(socket) { $0 == "WATCHDOG=1" } != nil)

        process.terminate()
        #expect(try await Self.await(socket) { $0 == "STOPPING=1" } != nil)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}
