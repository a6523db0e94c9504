import ArgumentParser
import Foundation
import SyncCore
import Testing
@testable import ClinicSyncCLI

@Suite("Demo and CLI")
struct DemoAndCLITests {
    @Test func theDemoShowsBothBranchesTheConflictAndItsResolution() async throws {
        let fixtures = try #require(Demo.locateFixtures())
        let directory = NSTemporaryDirectory() + "clinic-sync-demo-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = try await Demo(directory: directory, fixtures: fixtures, say: { _ in }).run()
        #expect(Set(report.replicas.map(\.branch)) == ["harley-street", "canary-wharf"])
        #expect(report.replicas.first { $0.terminal == "harley-b" }?.enquiries == 3)
        #expect(report.otherBranchSawEnquiries == 0)
        #expect(report.conflictSeen == ["harley-a": 1, "harley-b": 1])
        #expect(Set(report.conflictValues) == ["booked", "contacted"])
        #expect(report.openConflictsAfterResolution == 0)
        #expect(report.manualTherapyTitle == "Manual Therapy")
        #expect(report.replicas.allSatisfy { $0.bytesOnWire > 0 && $0.compressionRatio > 1 })
    }

    @Test func contentFixturesCarryTheClinicsOwnPage() throws {
        let fixtures = try #require(Demo.locateFixtures())
        let page = try String(contentsOfFile: fixtures + "/content/manual-therapy.md", encoding: .utf8)
        for sentence in [
            "Manual physical therapy is a specialized form of therapy which is given via hands as opposed to any machine or device.",
            "Massage therapy:", "Heat therapy:", "Exercises:", "Acupuncture and Physical therapies are also some of the manual therapies.",
        ] {
            #expect(page.contains(sentence), "\(sentence)")
        }
    }

    @Test func decodePrintsEveryVectorAsItsJSON() throws {
        let fixtures = try #require(Demo.locateFixtures())
        let vectors = URL(fileURLWithPath: fixtures).deletingLastPathComponent().appendingPathComponent("protocol/vectors").path
        let names = try FileManager.default.contentsOfDirectory(atPath: vectors).filter { $0.hasSuffix(".bin") }
        #expect(!names.isEmpty)
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: vectors + "/" + name)))
            let expected = try String(contentsOfFile: vectors + "/" + name.replacingOccurrences(of: ".bin", with: ".json"), encoding: .utf8)
            #expect(try DecodeCommand.render(bytes, name: name) == expected, "\(name)")
            #expect(try DecodeCommand.render(Deflate.compress(bytes), name: name) == expected, "\(name), deflated")
        }
        #expect(throws: CLIError.self) { try DecodeCommand.render(Array("[{\"id\": 1}]".utf8), name: "branches.json") }
    }
}
