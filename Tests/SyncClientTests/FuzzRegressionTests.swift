import Foundation
import FuzzChecks
import SyncCore
import Testing

/// Replays, without libFuzzer, every input a fuzz harness crashed on (Tests/FuzzRegressions/TARGET/)
/// and the seed corpus (protocol/vectors, as is and deflated) through the checks the harnesses make.
/// A library trap kills this test run; a failed property is an issue naming the file.
@Suite("Fuzz regressions", .serialized)
struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The regressions of one target, then the seeds every target starts from.
    static func inputs(_ target: String) throws -> [(String, [UInt8])] {
        let folder = root.appendingPathComponent("Tests/FuzzRegressions/\(target)")
        let found = try ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
            .map { name in (name, Array(try Data(contentsOf: folder.appendingPathComponent(name)))) }
        let vectors = root.appendingPathComponent("protocol/vectors")
        let seeds = try FileManager.default.contentsOfDirectory(atPath: vectors.path).filter { $0.hasSuffix(".bin") }.sorted()
            .flatMap { name -> [(String, [UInt8])] in
                let bytes = Array(try Data(contentsOf: vectors.appendingPathComponent(name)))
                return [(name, bytes), (name + " deflated", Deflate.compress(bytes))]
            }
        return found + seeds
    }

    static func directory(_ target: String) -> String {
        NSTemporaryDirectory() + "clinicsync-\(target)-test-\(UUID().uuidString)"
    }

    @Test func framesReplay() throws {
        let inputs = try Self.inputs("fuzz-frames")
        #expect(inputs.count >= 14)
        for (name, bytes) in inputs {
            #expect(throws: Never.self, "\(name)") { try FrameFuzz.check(bytes) }
        }
    }

    @Test func endpointReplay() async throws {
        let directory = Self.directory("fuzz-endpoint")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fuzz = try await EndpointFuzz(directory: directory)
        for (name, bytes) in try Self.inputs("fuzz-endpoint") {
            await #expect(throws: Never.self, "\(name)") { try await fuzz.check(bytes) }
        }
    }

    @Test func clientReplay() async throws {
        let directory = Self.directory("fuzz-client")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fuzz = try await ClientFuzz(directory: directory)
        for (name, bytes) in try Self.inputs("fuzz-client") {
            await #expect(throws: Never.self, "\(name)") { try await fuzz.check(bytes) }
        }
    }
}
