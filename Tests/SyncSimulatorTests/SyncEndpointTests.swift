import Foundation
import SyncCore
import SyncServer
import Testing

/// The transport-independent endpoint the HTTP app and the simulator share: same problems, same order.
@Suite("SyncEndpoint without a socket")
struct SyncEndpointTests {
    struct Problem: Decodable { var code: String; var status: Int }

    static func problem(_ response: EndpointResponse) throws -> Problem {
        #expect(response.contentType == "application/problem+json" && response.contentEncoding == nil)
        return try JSONDecoder().decode(Problem.self, from: Data(response.body))
    }

    @Test func answersEveryStepOfSection8WithItsProblem() async throws {
        let directory = NSTemporaryDirectory() + "clinic-sync-endpoint-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteServerStore(directory: directory)
        try await store.saveBranch(id: "harley-street", name: "Harley Street", address: nil, phone: nil)
        let (_, code) = try await store.issueEnrollmentCode(branch: "harley-street", name: "reception", role: .terminal)
        let endpoint = SyncEndpoint(store: store)
        let enroll = Deflate.compress(FrameCodec.encode(EnrollRequest(code: code, deviceName: "reception")))

        #expect(try Self.problem(await endpoint.handle(path: "/v1/nothing", authorization: nil, contentEncoding: "deflate", body: [])).status == 404)
        #expect(try Self.problem(await endpoint.handle(path: "/v1/enroll", authorization: nil, contentEncoding: nil, body: enroll)).code == "unsupported_encoding")
        #expect(try Self.problem(await endpoint.handle(path: "/v1/enroll", authorization: nil, contentEncoding: "deflate", body: [1, 2, 3])).code == "bad_compression")
        let wrongType = Deflate.compress(FrameCodec.encode(SyncRequest(replica: ReplicaID(1), clock: .zero, cursor: 0)))
        #expect(try Self.problem(await endpoint.handle(path: "/v1/enroll", authorization: nil, contentEncoding: "deflate", body: wrongType)).status == 400)
        let badCode = Deflate.compress(FrameCodec.encode(EnrollRequest(code: "0000-0000-0000", deviceName: "x")))
        #expect(try Self.problem(await endpoint.handle(path: "/v1/enroll", authorization: nil, contentEncoding: "deflate", body: badCode)).code == "invalid_enrollment_code")

        let enrolled = await endpoint.handle(path: "/v1/enroll", authorization: nil, contentEncoding: "DEFLATE", body: enroll)
        #expect(enrolled.status == 200 && enrolled.contentEncoding == "deflate")
        let identity = try FrameCodec.decode(try Deflate.decompress(enrolled.body), as: EnrollResponse.self)
        let bearer = "Bearer \(identity.token)"
        let request = Deflate.compress(FrameCodec.encode(SyncRequest(replica: identity.replica, clock: identity.clock, cursor: 0)))

        // Authentication comes first: a bad token is refused whatever the body.
        #expect(try Self.problem(await endpoint.handle(path: "/v1/sync", authorization: nil, contentEncoding: nil, body: [0])).code == "missing_token")
        #expect(try Self.problem(await endpoint.handle(path: "/v1/sync", authorization: "Bearer cs1_nope", contentEncoding: nil, body: [0])).code == "unknown_token")
        #expect(try Self.problem(await endpoint.handle(path: "/v1/sync", authorization: bearer, contentEncoding: "gzip", body: request)).code == "unsupported_encoding")
        let mismatch = Deflate.compress(FrameCodec.encode(SyncRequest(replica: ReplicaID(identity.replica.rawValue ^ 1), clock: identity.clock, cursor: 0)))
        #expect(try Self.problem(await endpoint.handle(path: "/v1/sync", authorization: bearer, contentEncoding: "deflate", body: mismatch)).code == "replica_mismatch")
        let future = Deflate.compress(FrameCodec.encode(SyncRequest(
            replica: identity.replica, clock: HLC(milliseconds: identity.clock.milliseconds + 3_600_000, counter: 0), cursor: 0)))
        let drift = try Self.problem(await endpoint.handle(path: "/v1/sync", authorization: bearer, contentEncoding: "deflate", body: future))
        #expect(drift.code == "clock_drift" && drift.status == 422)

        let synced = await endpoint.handle(path: "/v1/sync", authorization: bearer, contentEncoding: "deflate", body: request)
        #expect(synced.status == 200)
        let page = try FrameCodec.decode(try Deflate.decompress(synced.body), as: SyncResponse.self)
        #expect(page.changes.contains { $0.change.row == "harley-street" })

        _ = try await store.revokeDevice(id: try #require(try await store.devices().first).id)
        #expect(try Self.problem(await endpoint.handle(path: "/v1/sync", authorization: bearer, contentEncoding: "deflate", body: request)).code == "revoked_token")
    }
}
