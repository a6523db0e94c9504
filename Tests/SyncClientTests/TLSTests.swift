import ArgumentParser
import Foundation
import SyncClient
import SyncCore
import SyncServer
import Testing
@testable import ClinicSyncCLI

/// Real TLS on loopback: a CA and server certificates made in the test, a server serving them, and
/// terminals trusting the CA, the system store or a pinned key.
@Suite("TLS between terminals and the server")
struct TLSTests {
    let sample = NewEnquiry(name: "Test Patient One", phone: "020 7946 0101", email: "patient.one@example.invalid",
                            topic: "sciatica", message: "Leg pain since March", preferredContact: "phone", consentToContact: true)
    let ca: TestCA
    let folder: String

    init() throws {
        ca = try TestCA()
        folder = try CLIContractTests.scratch()
    }

    func caTrust() throws -> ServerTrust { ServerTrust(certificateAuthorityPEM: try ca.pem) }

    @Test func aTerminalEnrolledWithTheCAFileSyncsAnEnquiryOverHTTPS() async throws {
        let certificate = try ca.issueServerCertificate(in: folder)
        try await Harness.run(tls: try ServerTLS(certificatePath: certificate.certificatePath, keyPath: certificate.keyPath)) { harness in
            #expect(harness.url.hasPrefix("https://127.0.0.1:"))
            // Enrolled through the CLI as an operator would; the CA file is gone before the first sync,
            // so what syncs is the CA kept in the replica.
            let caFile = folder + "/ca.pem"
            try self.ca.pem.write(toFile: caFile, atomically: true, encoding: .utf8)
            let database = harness.directory + "/a.sqlite"
            let code = try await harness.enrollmentCode("a")
            try await CLIContractTests.run(["terminal", "enroll", "--db", database, "--server", harness.url, "--code", code, "--ca-file", caFile])
            try FileManager.default.removeItem(atPath: caFile)
            let a = try Replica.open(at: database, creating: false)
            #expect(try a.serverTrust() == self.caTrust())
            let id = try a.enquiries.add(sample)
            let pushed = try await SyncEngine(replica: a, transport: try transport(for: a), logger: Harness.logger).sync()
            #expect(pushed.pushed == 10 && pushed.rejected == 0)
            let b = try await harness.terminal("b", trust: try self.caTrust())
            try await b.sync()
            #expect(try b.replica.enquiries.get(id)?.name == "Test Patient One")
        }
    }

    @Test func aTerminalThatDoesNotTrustTheServersCAGetsAnUntrustedCertificateErrorNotOffline() async throws {
        let certificate = try ca.issueServerCertificate(in: folder)
        try await Harness.run(tls: try ServerTLS(certificatePath: certificate.certificatePath, keyPath: certificate.keyPath)) { harness in
            // The system store does not know the test CA; nor does a terminal given another CA.
            for trust in [ServerTrust.system, ServerTrust(certificateAuthorityPEM: try TestCA("Another CA").pem)] {
                let replica = try Replica.open(at: harness.directory + "/\(UUID().uuidString).sqlite")
                let code = try await harness.enrollmentCode("a")
                let error = await #expect(throws: SyncError.self) { try await replica.enroll(server: harness.url, code: code, deviceName: "a", trust: trust) }
                #expect(error?.code == .untrustedServerCertificate)
                #expect(error?.problem == "untrusted_server_certificate")
                #expect(error?.description.contains("127.0.0.1:\(harness.port)") == true)
                #expect(try replica.identity() == nil)
            }
            // A terminal that trusted the CA and was repointed to the system store: its syncs fail the
            // same way, and its status shows why.
            let b = try await harness.terminal("b", trust: try self.caTrust())
            try b.replica.repoint(server: harness.url, trust: .system)
            let engine = SyncEngine(replica: b.replica, transport: try HTTPTransport.forReplica(b.replica), logger: Harness.logger)
            let error = await #expect(throws: SyncError.self) { try await engine.syncRecordingOutcome() }
            #expect(error?.code == .untrustedServerCertificate)
            #expect(error?.code != .offline)
            #expect(try b.replica.status().lastFailure?.hasPrefix("untrusted server certificate") == true)
        }
    }

    @Test func aPinnedTerminalRefusesAnotherCertificateFromTheSameCA() async throws {
        let first = try ca.issueServerCertificate(in: folder, named: "first")
        let second = try ca.issueServerCertificate(in: folder, named: "second")
        let tls = try ServerTLS(certificatePath: first.certificatePath, keyPath: first.keyPath)
        try await Harness.run(tls: tls) { harness in
            let pinned = try await harness.terminal("pinned", trust: ServerTrust(pinnedKeySHA256: first.pin))
            let viaCA = try await harness.terminal("ca", trust: try self.caTrust())
            let id = try viaCA.replica.enquiries.add(sample)
            try await viaCA.sync()
            try await pinned.sync()
            #expect(try pinned.replica.enquiries.get(id) != nil)

            // The server now serves another certificate from the same CA, with another key.
            try self.replace(first, with: second)
            try tls.reload()
            try await viaCA.sync()
            let error = await #expect(throws: SyncError.self) { try await pinned.sync() }
            #expect(error?.code == .untrustedServerCertificate)
            #expect(error?.problem == "pin_mismatch")
            #expect(error?.detail.contains(second.pin) == true, "names the key the server showed, for the operator to compare")

            // The operator pins the new key.
            try pinned.replica.repoint(server: harness.url, trust: ServerTrust(pinnedKeySHA256: second.pin))
            _ = try await SyncEngine(replica: pinned.replica, transport: try HTTPTransport.forReplica(pinned.replica), logger: Harness.logger).sync()
        }
    }

    @Test func plainHTTPBeyondLoopbackIsRefusedWithoutTheAllowFlag() async throws {
        // Nothing listens there and no request is made: every refusal comes before a connection.
        let remote = "http://sync.clinic.example:8080"
        let replica = try Replica.open(at: folder + "/a.sqlite")
        let error = await #expect(throws: SyncError.self) { try await replica.enroll(server: remote, code: "ABCD-EFGH", deviceName: "a") }
        #expect(error?.code == .insecureTransport)
        #expect(error?.detail.contains("refusing plain HTTP to sync.clinic.example") == true)
        #expect(try replica.identity() == nil)

        let database = folder + "/b.sqlite"
        let message = await CLIContractTests.failure(["terminal", "enroll", "--db", database, "--server", remote, "--code", "ABCD-EFGH"])
        #expect(message?.contains("--allow-insecure-http") == true)
        #expect(!FileManager.default.fileExists(atPath: database), "a refused enrollment creates no replica file")

        // At sync too: a file pointing there (an older enrollment) sends nothing in clear.
        let refused = await #expect(throws: SyncError.self) { _ = try await HTTPTransport(baseURL: remote).post("/v1/sync", body: [], token: "token") }
        #expect(refused?.code == .insecureTransport)

        try ServerTrust(allowsInsecureHTTP: true).validate(server: remote)
        for local in ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "http://127.1.2.3"] {
            try ServerTrust.system.validate(server: local)
        }

        // Repointing an enrolled terminal there follows the same rule, and the flag is kept.
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let repointed = #expect(throws: SyncError.self) { try a.replica.repoint(server: remote) }
            #expect(repointed?.code == .insecureTransport)
            #expect(try a.replica.identity()?.server == harness.url, "nothing changed")
            try await CLIContractTests.run(["terminal", "repoint", "--db", a.replica.path, "--server", remote, "--allow-insecure-http"])
            #expect(try a.replica.identity()?.server == remote)
            #expect(try a.replica.serverTrust().allowsInsecureHTTP)
        }
    }

    @Test func reloadingSwapsTheCertificateForNewConnectionsAndABadPairKeepsTheOldOne() async throws {
        let first = try ca.issueServerCertificate(in: folder, named: "first")
        let second = try ca.issueServerCertificate(in: folder, named: "second")
        let spare = try ca.issueServerCertificate(in: folder, named: "spare")
        let tls = try ServerTLS(certificatePath: first.certificatePath, keyPath: first.keyPath)
        #expect(tls.pinSHA256 == first.pin, "the pin the server logs is the one a terminal computes")
        try await Harness.run(tls: tls) { harness in
            // Which certificate answers, told by which pin a handshake passes.
            func serves(_ certificate: ServerCertificate) async -> Bool {
                let transport = HTTPTransport(baseURL: harness.url, trust: ServerTrust(pinnedKeySHA256: certificate.pin))
                return (try? await transport.post("/v1/sync", body: [], token: nil)) != nil
            }
            var (servesFirst, servesSecond) = (await serves(first), await serves(second))
            #expect(servesFirst && !servesSecond)

            try self.replace(first, with: second)
            #expect(try tls.reload() == second.pin)
            (servesFirst, servesSecond) = (await serves(first), await serves(second))
            #expect(servesSecond && !servesFirst)

            // A key that is not the certificate's: refused, and the second pair stays in use.
            let secondKey = try String(contentsOfFile: first.keyPath, encoding: .utf8)
            try FileManager.default.removeItem(atPath: first.keyPath)
            try FileManager.default.copyItem(atPath: spare.keyPath, toPath: first.keyPath)
            let mismatch = #expect(throws: ServerTLSError.self) { try tls.reload() }
            #expect(mismatch?.description.contains("does not match") == true)
            #expect(tls.pinSHA256 == second.pin)
            #expect(await serves(second))

            // A missing certificate file: named, and nothing changes.
            try secondKey.write(toFile: first.keyPath, atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: first.certificatePath)
            let missing = #expect(throws: ServerTLSError.self) { try tls.reload() }
            #expect(missing?.description == "cannot read the TLS certificate \(first.certificatePath): no such file")
            #expect(await serves(second))
        }
    }

    @Test func serveRefusesHalfATLSPairAndPlainHTTPBeyondLoopback() async throws {
        func usageError(_ arguments: [String]) -> String? {
            do {
                _ = try ClinicSyncCommand.parseAsRoot(arguments)
                return nil
            } catch {
                return ClinicSyncCommand.message(for: error)
            }
        }
        let data = ["serve", "--data", folder + "/server"]
        #expect(usageError(data + ["--tls-cert", "server.crt"])?.contains("--tls-cert needs --tls-key") == true)
        #expect(usageError(data + ["--tls-key", "server.key"])?.contains("--tls-key needs --tls-cert") == true)
        #expect(usageError(data + ["--host", "0.0.0.0"])?.contains("refusing plain HTTP on 0.0.0.0") == true)
        #expect(usageError(data + ["--host", "0.0.0.0", "--insecure-http"]) == nil)
        #expect(usageError(data + ["--host", "0.0.0.0", "--tls-cert", "a", "--tls-key", "b"]) == nil)
        #expect(usageError(["terminal", "enroll", "--server", "https://x", "--code", "c", "--ca-file", "ca.pem", "--pin-sha256", "x"])?
            .contains("exclude each other") == true)

        // A certificate that cannot be read stops `serve` before it creates a store.
        let message = await CLIContractTests.failure(data + ["--tls-cert", folder + "/none.crt", "--tls-key", folder + "/none.key"])
        #expect(message == "cannot read the TLS certificate \(folder)/none.crt: no such file")
        #expect(!FileManager.default.fileExists(atPath: folder + "/server"))
    }

    /// Puts `replacement`'s files where the server reads `original`'s, as a renewal does.
    func replace(_ original: ServerCertificate, with replacement: ServerCertificate) throws {
        for (from, to) in [(replacement.certificatePath, original.certificatePath), (replacement.keyPath, original.keyPath)] {
            try FileManager.default.removeItem(atPath: to)
            try FileManager.default.copyItem(atPath: from, toPath: to)
        }
    }
}
