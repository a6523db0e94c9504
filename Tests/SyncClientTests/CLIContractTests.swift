import ArgumentParser
import Foundation
import GRDB
import SyncClient
import SyncCore
import SyncServer
import Testing
@testable import ClinicSyncCLI

/// The CLI's contract (issue 14): a command that could not do what it says fails with a clear message
/// and a non-zero exit, and creates or deletes nothing it was not asked to.
@Suite("CLI contract")
struct CLIContractTests {
    /// Runs `clinic-sync ARGUMENTS` in process, as `runMain` does.
    static func run(_ arguments: [String]) async throws {
        var command = try ClinicSyncCommand.parseAsRoot(arguments)
        if var asyncCommand = command as? AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    }

    /// The message the command failed with, or nil when it succeeded.
    static func failure(_ arguments: [String]) async -> String? {
        do {
            try await run(arguments)
            return nil
        } catch {
            return String(describing: error)
        }
    }

    static func scratch() throws -> String {
        let directory = NSTemporaryDirectory() + "clinic-sync-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func adminCommandsRefuseAMissingStoreAndCreateNothing() async throws {
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let typo = scratch + "/srvtypo"
        for arguments in [
            ["admin", "erase", "--data", typo, "2f0c6a4e-0000-4000-8000-000000000000"],
            ["admin", "device", "list", "--data", typo],
            ["admin", "device", "add", "--data", typo, "--branch", "harley-street"],
            ["admin", "device", "revoke", "--data", typo, "some-device"],
            ["admin", "branch", "list", "--data", typo],
            ["admin", "conflicts", "list", "--data", typo],
            ["admin", "generate", "--data", typo, "--enquiries", "1"],
        ] {
            let message = await Self.failure(arguments)
            #expect(message?.contains("no server store at \(typo)/server.sqlite") == true, "\(arguments): \(message ?? "succeeded")")
            #expect(!FileManager.default.fileExists(atPath: typo), "\(arguments) created \(typo)")
        }
    }

    @Test func terminalCommandsRefuseAMissingReplicaAndCreateNothing() async throws {
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let typo = scratch + "/typo/reception.sqlite"
        for arguments in [
            ["terminal", "status", "--db", typo],
            ["terminal", "sync", "--db", typo],
            ["terminal", "enquiry", "list", "--db", typo],
            ["terminal", "enquiry", "add", "--db", typo, "--name", "Test Patient", "--phone", "020 7946 0000"],
            ["terminal", "enquiry", "erase", "--db", typo, "nope"],
            ["terminal", "content", "list", "--db", typo],
            ["terminal", "conflicts", "list", "--db", typo],
            ["terminal", "dead-letters", "--db", typo],
            ["daemon", "--db", typo],
        ] {
            let message = await Self.failure(arguments)
            #expect(message?.contains("no replica at \(typo)") == true, "\(arguments): \(message ?? "succeeded")")
            #expect(!FileManager.default.fileExists(atPath: scratch + "/typo"), "\(arguments) created a replica")
        }
    }

    @Test func adminEraseOfAnUnknownEnquiryFails() async throws {
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let data = scratch + "/srv"
        try await Self.run(["admin", "branch", "add", "--data", data, "--id", "harley-street", "--name", "Harley Street"])
        let message = await Self.failure(["admin", "erase", "--data", data, "nope"])
        #expect(message == "no enquiry nope on this server; nothing was erased")

        let store = try SQLiteServerStore(directory: data, creating: false)
        try await store.write([
            CellWrite(.enquiry, "e1", Columns.Enquiry.branch, "harley-street"),
            CellWrite(.enquiry, "e1", Columns.Enquiry.name, "Test Patient"),
        ])
        #expect(await Self.failure(["admin", "erase", "--data", data, "e1"]) == nil)
        #expect(try await store.eraseHeld(.enquiry, row: "e1") == .alreadyErased)
    }

    @Test func terminalEraseOfAnUnknownEnquiryFailsAndLeavesNoDeadLetter() async throws {
        try await Harness.run { harness in
            let a = try await harness.terminal("a")
            let message = await Self.failure(["terminal", "enquiry", "erase", "--db", a.replica.path, "nope"])
            #expect(message == "no enquiry nope on this terminal; nothing was erased")
            #expect(try a.replica.status().pendingChanges == 0)
            try await a.sync()
            #expect(try a.replica.deadLetters().isEmpty)

            let id = try a.replica.enquiries.add(NewEnquiry(name: "Test Patient", phone: "020 7946 0000"))
            #expect(await Self.failure(["terminal", "enquiry", "erase", "--db", a.replica.path, id]) == nil)
            #expect(try a.replica.enquiries.get(id) == nil)
        }
    }

    @Test func theDemoRefusesAFolderItDidNotCreateAndDeletesNothing() async throws {
        let fixtures = try #require(Demo.locateFixtures())
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // A real server store and someone's notes, in the folder the README's next section uses.
        let srv = scratch + "/srv"
        try await Self.run(["admin", "branch", "add", "--data", srv, "--id", "harley-street", "--name", "Harley Street"])
        try Data("do not delete\n".utf8).write(to: URL(fileURLWithPath: srv + "/notes.txt"))
        let message = await Self.failure(["demo", "--dir", srv, "--fixtures", fixtures])
        #expect(message?.contains("was not created by the demo") == true, "\(message ?? "succeeded")")
        #expect(FileManager.default.fileExists(atPath: srv + "/notes.txt"))
        #expect(try SQLiteServerStore(directory: srv, creating: false).branches().map(\.id) == ["harley-street"])

        // The demo's own folder may be reused, but not once someone has put something else in it.
        let own = scratch + "/demo-data"
        _ = try await Demo(directory: own, fixtures: fixtures, say: { _ in }).run()
        _ = try await Demo(directory: own, fixtures: fixtures, say: { _ in }).run()
        try Data("mine\n".utf8).write(to: URL(fileURLWithPath: own + "/notes.txt"))
        await #expect(throws: CLIError.self) { try await Demo(directory: own, fixtures: fixtures, say: { _ in }).run() }
        #expect(FileManager.default.fileExists(atPath: own + "/harley-a.sqlite"))
    }

    @Test func theServerStoreIsOwnerOnlyAndLooserFilesAreReported() async throws {
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let data = scratch + "/srv"
        let store = try SQLiteServerStore(directory: data)
        try await store.saveBranch(id: "harley-street", name: "Harley Street", address: nil, phone: nil)
        let path = SQLiteServerStore.path(in: data)
        for file in [data, path, path + "-wal", path + "-shm"] {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber).int16Value
            #expect(mode & 0o077 == 0, "\(file) is \(String(mode, radix: 8))")
        }
        #expect(SQLiteServerStore.looseFiles(in: data).isEmpty)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(SQLiteServerStore.looseFiles(in: data).map(\.path) == [path])
        #expect(SQLiteServerStore.looseFiles(in: data).first?.mode == 0o644)
    }
}

extension CLIContractTests {
    @Test func branchesImportFromTheFixturesAndContentForAnUnknownBranchIsRefused() async throws {
        let fixtures = try #require(Demo.locateFixtures())
        let scratch = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let data = scratch + "/srv"
        try await Self.run(["admin", "branch", "import", "--data", data, fixtures + "/branches.json"])
        let store = try SQLiteServerStore(directory: data, creating: false)
        #expect(try store.branches().map(\.id).contains("harley-street"))

        let content = scratch + "/content"
        try FileManager.default.createDirectory(atPath: content, withIntermediateDirectories: true)
        try Data("---\nid: notice-x\nkind: notice\ntitle: Closed\nbranch: harley-stret\n---\nClosed on Monday.\n".utf8)
            .write(to: URL(fileURLWithPath: content + "/notice-x.md"))
        let message = await Self.failure(["admin", "content", "import", "--data", data, content])
        #expect(message?.contains("branch 'harley-stret', which does not exist") == true, "\(message ?? "imported")")
        #expect(try await store.writerForTools.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM content") } == 0, "nothing was imported")
    }
}
