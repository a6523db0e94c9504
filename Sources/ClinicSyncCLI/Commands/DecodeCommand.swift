import ArgumentParser
import Foundation
import SyncCore

/// `clinic-sync decode FILE`: prints any v1 frame, deflated or not, as its JSON rendering.
struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print a protocol frame (deflated or not) as JSON.",
        discussion: "The JSON is the rendering used by protocol/vectors/*.json. Exits 1 with a one-line error for anything that is not a valid frame."
    )

    @Argument(help: "The frame file, or - for standard input.")
    var file: String

    func run() throws {
        let data: Data
        do {
            data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw CLIError("cannot read \(file): \((error as NSError).localizedDescription)")
        }
        print(try Self.render([UInt8](data), name: file), terminator: "")
    }

    /// The JSON rendering of a frame file's bytes, inflating them first if they are deflated.
    static func render(_ bytes: [UInt8], name: String) throws -> String {
        var bytes = bytes
        if Deflate.looksCompressed(bytes) {
            do {
                bytes = try Deflate.decompress(bytes, limits: InflateLimits(maxCompressedBytes: 256 << 20, maxInflatedBytes: 1 << 30, maxRatio: 1000))
            } catch {
                throw CLIError("\(name): \(error)")
            }
        }
        do {
            return try FrameCodec.decode(bytes).jsonRendering()
        } catch {
            throw CLIError("\(name): \(error)")
        }
    }
}
