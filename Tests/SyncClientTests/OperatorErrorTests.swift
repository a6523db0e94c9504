import ArgumentParser
import Foundation
import SyncClient
import SyncCore
import Testing
@testable import ClinicSyncCLI

/// Errors that say what happened and where (issue 14, item 7).
@Suite("Operator errors")
struct OperatorErrorTests {
    /// A loopback port nothing listens on: bound to learn a free one, then closed.
    static func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test func aRefusedConnectionSaysRefusedWithHostAndPort() async throws {
        let port = try Self.closedPort()
        let transport = HTTPTransport(baseURL: "http://127.0.0.1:\(port)")
        let error = await #expect(throws: SyncError.self) { _ = try await transport.post("/v1/sync", body: [], token: nil) }
        #expect(error?.code == .offline)
        #expect(error?.problem == "connection_refused", "the --json problem field")
        #expect(error?.description == "offline: connection refused by 127.0.0.1:\(port) (is the server running?)")
    }

    @Test func aTakenPortIsNamed() async throws {
        try await Harness.run { harness in
            let message = await CLIContractTests.failure(["serve", "--data", harness.directory + "/second", "--port", String(harness.port), "--log-level", "critical"])
            #expect(message == "cannot listen on 127.0.0.1:\(harness.port): the address is already in use (another server running?); stop it or choose another --port")
        }
    }

    @Test func versionIsPrinted() {
        do {
            _ = try ClinicSyncCommand.parseAsRoot(["--version"])
            Issue.record("--version did not exit")
        } catch {
            #expect(ClinicSyncCommand.message(for: error) == BuildInfo.version)
        }
    }
}
