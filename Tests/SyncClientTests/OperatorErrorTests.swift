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

    /// The usage error `clinic-sync ARGUMENTS` stops with before running, or nil if it parsed.
    static func usageError(_ arguments: [String]) -> String? {
        do {
            _ = try ClinicSyncCommand.parseAsRoot(arguments)
            return nil
        } catch {
            return ClinicSyncCommand.message(for: error)
        }
    }

    /// Numbers out of range are refused with the option and range named, never wrapped (issue 13).
    @Test(arguments: [
        (["serve", "--port", "80000"], "--port must be 0–65535 (0 picks a free port), not 80000"),
        (["serve", "--port=-1"], "--port must be 0–65535 (0 picks a free port), not -1"),
        (["serve", "--max-ratio", "0"], "--max-ratio must be 2–1000000, not 0"),
        (["serve", "--max-page=-5"], "--max-page must be 1–1000000, not -5"),
        (["serve", "--host", ""], "--host must not be empty"),
        (["daemon", "--interval", "inf"], "--interval must be"),
        (["daemon", "--interval", "1e300"], "--interval must be"),
        (["daemon", "--max-backoff", "nan"], "--max-backoff must be"),
        (["admin", "device", "list", "--stale-after", "0"], "--stale-after must be"),
        (["admin", "generate", "--enquiries", "0"], "--enquiries must be 1–10000000, not 0"),
    ])
    func outOfRangeOptionsAreRefused(arguments: [String], message: String) {
        let error = Self.usageError(arguments)
        #expect(error?.contains(message) == true, "\(arguments): \(error ?? "accepted")")
    }

    @Test func aFailedEnrollmentLeavesNoReplicaFile() async throws {
        let directory = try CLIContractTests.scratch()
        let db = directory + "/reception-1.sqlite"
        let message = await CLIContractTests.failure(["terminal", "enroll", "--db", db, "--server", "http://127.0.0.1:\(try Self.closedPort())", "--code", "x"])
        #expect(message?.contains("connection refused") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "no replica file left to be taken for a real one")
    }

    @Test func theBenchmarkWipesOnlyItsOwnFolder() async throws {
        let directory = try CLIContractTests.scratch()
        let store = directory + "/server.sqlite"
        try #require(FileManager.default.createFile(atPath: store, contents: Data("patient data".utf8)))
        let message = await CLIContractTests.failure(["bench", "--quick", "--dir", directory])
        #expect(message?.contains("is not a benchmark folder") == true)
        #expect(FileManager.default.contents(atPath: store) == Data("patient data".utf8))
    }
}
