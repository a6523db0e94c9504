import SyncCore
import SyncServer

/// `fuzz-frames`: inflating and decoding bytes from the network, and the codec's round trip.
package enum FrameFuzz {
    /// The server's request limits (SPEC 9): what an attacker's body meets first.
    static let serverLimits = SyncLimits().inflate

    /// Throws ``FuzzFinding`` when a property fails. A trap in the library is a finding too.
    package static func check(_ input: [UInt8]) throws {
        // The input as a request body: inflated under the server's limits, then decoded.
        if let inflated = try? Deflate.decompress(input, limits: serverLimits) {
            guard inflated.count <= serverLimits.maxInflatedBytes else {
                throw FuzzFinding("inflated \(inflated.count) bytes past the limit")
            }
            try roundTrip(inflated)
        }
        // The input as an already inflated frame.
        try roundTrip(input)
        // Deflate itself must round-trip whatever it is given.
        let compressed = Deflate.compress(input)
        guard try Deflate.decompress(compressed, limits: InflateLimits(maxCompressedBytes: .max, maxInflatedBytes: .max, maxRatio: .max)) == input else {
            throw FuzzFinding("deflate then inflate changed \(input.count) bytes")
        }
    }

    /// Any frame that decodes re-encodes to bytes that decode to the same frame, and encoding that
    /// frame again gives the same bytes: the codec has one canonical form and no asymmetry.
    static func roundTrip(_ bytes: [UInt8]) throws {
        guard let frame = try? FrameCodec.decode(bytes) else { return }
        let encoded = FrameCodec.encode(frame)
        let again: Frame
        do {
            again = try FrameCodec.decode(encoded)
        } catch {
            throw FuzzFinding("a decoded frame re-encodes to bytes its decoder refuses: \(error.code.rawValue) at \(error.offset)")
        }
        guard again == frame else { throw FuzzFinding("a decoded frame re-encodes to a different frame") }
        // String equality is canonical equivalence; bytes are what SQLite compares.
        guard FrameCodec.encode(again) == encoded else { throw FuzzFinding("encoding is not stable across a round trip") }
        // The canonical encoding of a canonical input is the input itself (SPEC 2.1: decoders accept long varints,
        // 3.6: duplicate dictionary entries; only those may differ).
        if encoded.count > bytes.count {
            throw FuzzFinding("re-encoding grew a frame from \(bytes.count) to \(encoded.count) bytes")
        }
    }
}
