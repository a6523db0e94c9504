import Foundation
import Hummingbird
import HummingbirdTesting
import SyncCore
import Testing
@testable import SyncServer

/// What an operator's curl sees (issue 14, item 7).
@Suite("Operator HTTP")
struct OperatorHTTPTests {
    @Test func aWrongMethodOnAKnownPathIs405WithAllow() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            for (method, path, allow) in [(HTTPRequest.Method.get, "/v1/sync", "POST"), (.get, "/v1/enroll", "POST"), (.post, "/healthz", "GET, HEAD"), (.delete, "/metrics", "GET, HEAD")] {
                let response = try await client.execute(uri: path, method: method)
                #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                #expect(response.headers[.allow] == allow, "\(method) \(path)")
                #expect((try? Wire.problem(response).code) == "method_not_allowed", "\(method) \(path)")
            }
            #expect(try await client.execute(uri: "/v2/sync", method: .post).status == .notFound)
        }
    }

    @Test func healthzNamesTheVersionAndTheStore() async throws {
        let server = try await TestServer()
        let id = try await server.store.serverID()
        #expect(id.count == 16)
        try await server.app.test(.router) { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            #expect(response.status == .ok)
            let health = try JSONDecoder().decode(Health.self, from: Data(response.body.readableBytesView))
            #expect(health.status == "ok" && health.version == BuildInfo.version && health.server == id)
        }
    }
}
