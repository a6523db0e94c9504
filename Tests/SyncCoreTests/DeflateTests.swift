import Testing
@testable import SyncCore

@Suite("Deflate with limits")
struct DeflateTests {
    @Test func roundTrips() throws {
        let input = Array(String(repeating: "Manual therapy at 19 Harley St. ", count: 200).utf8)
        let compressed = Deflate.compress(input)
        #expect(compressed.count < input.count / 10)
        #expect(Deflate.looksCompressed(compressed))
        #expect(try Deflate.decompress(compressed) == input)
        #expect(try Deflate.decompress(Deflate.compress([])) == [])
    }

    @Test func aThousandToOneBombIsStoppedByTheRatio() {
        let bomb = Deflate.compress([UInt8](repeating: 0, count: 10 << 20))
        #expect(bomb.count < 11_000)
        let error = #expect(throws: CompressionError.self) { try Deflate.decompress(bomb, limits: InflateLimits(maxInflatedBytes: 64 << 20)) }
        #expect(error?.code == .ratioExceeded)
    }

    @Test func inflatedSizeIsEnforcedWhileInflating() {
        let input = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let error = #expect(throws: CompressionError.self) {
            try Deflate.decompress(Deflate.compress(input), limits: InflateLimits(maxInflatedBytes: 100_000))
        }
        #expect(error?.code == .inflatedTooLarge)
    }

    @Test func oversizeCompressedBodyIsRefusedBeforeInflating() {
        let error = #expect(throws: CompressionError.self) {
            try Deflate.decompress([UInt8](repeating: 1, count: 2_000), limits: InflateLimits(maxCompressedBytes: 1_000))
        }
        #expect(error?.code == .compressedTooLarge)
    }

    @Test func corruptAndTruncatedStreams() {
        let good = Deflate.compress(Array("a clinic enquiry".utf8))
        #expect((try? Deflate.decompress(Array(good.dropLast(5)))) == nil)
        let truncated = #expect(throws: CompressionError.self) { try Deflate.decompress(Array(good.dropLast(5))) }
        #expect(truncated?.code == .corrupt)
        let garbage = #expect(throws: CompressionError.self) { try Deflate.decompress(Array("not zlib at all".utf8)) }
        #expect(garbage?.code == .corrupt)
        let trailing = #expect(throws: CompressionError.self) { try Deflate.decompress(good + [1, 2, 3]) }
        #expect(trailing?.code == .corrupt)
    }
}
