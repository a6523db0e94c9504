import Foundation
import Hummingbird
import NIOCore
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
            // What `Allow` names is served: a monitor probing with HEAD gets GET's status, no body.
            for path in ["/healthz", "/metrics"] {
                let head = try await client.execute(uri: path, method: .head)
                #expect(head.status == .ok, "HEAD \(path)")
                #expect(head.body.readableBytes == 0, "HEAD \(path)")
            }
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

    @Test func metricsCountStaleDevicesOpenConflictsRejectionsAndTheBuild() async throws {
        let server = try await TestServer()
        try await server.app.test(.router) { client in
            var device = try await client.enrolledDevice(server, branch: "harley-street")
            // One change out of the device's scope is refused and held.
            let outOfScope = device.write(.enquiry, "e-richmond", [(Columns.Enquiry.branch, "richmond"), (Columns.Enquiry.name, "Test Patient")],
                                          wall: server.clock.milliseconds())
            _ = try await client.syncOK(device.request(outOfScope), token: device.token)
            func scrape() async throws -> String {
                String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            }
            var text = try await scrape()
            for line in [
                #"clinicsync_build_info{version="\#(BuildInfo.version)"} 1"#, #"clinicsync_devices{state="active"} 1"#,
                #"clinicsync_devices{state="stale"} 0"#, "clinicsync_conflicts_open 0", "clinicsync_process_start_time_seconds ",
                #"clinicsync_rejections_held{reason="out_of_scope"} "#,
            ] {
                #expect(text.contains(line), "\(line) in\n\(text)")
            }
            #expect(!text.contains(#"clinicsync_rejections_held{reason="out_of_scope"} 0"#), "\(text)")
            server.clock.advance(2 * 3_600 * 1_000)
            text = try await scrape()
            #expect(text.contains(#"clinicsync_devices{state="stale"} 1"#), "\(text)")
            #expect(text.contains("clinicsync_device_oldest_sync_age_seconds 7200"), "\(text)")
        }
    }

    /// /metrics: this machine only by default; from anywhere with the configured token (issue 13).
    @Test func metricsAnswerLoopbackOnlyUnlessATokenIsConfigured() async throws {
        let local = try SocketAddress(ipAddress: "127.0.0.1", port: 40_000), remote = try SocketAddress(ipAddress: "10.0.0.5", port: 40_000)
        let (loopback6, mapped, private6) = (try SocketAddress(ipAddress: "::1", port: 1), try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 1),
                                             try SocketAddress(ipAddress: "fd00::5", port: 1))
        let access = MetricsAccess.loopbackOnly
        #expect(access.allows(peer: local, authorization: nil) && access.allows(peer: loopback6, authorization: nil))
        #expect(access.allows(peer: mapped, authorization: nil))
        #expect(!access.allows(peer: remote, authorization: nil) && !access.allows(peer: private6, authorization: nil))
        let token = MetricsAccess.token("0123456789abcdef0123")
        #expect(token.allows(peer: remote, authorization: "Bearer 0123456789abcdef0123"))
        #expect(!token.allows(peer: local, authorization: nil) && !token.allows(peer: remote, authorization: "Bearer 0123456789abcdef0124"))

        var server = try await TestServer()
        server.configuration.metricsAccess = token
        try await server.app.test(.router) { client in
            let refused = try await client.execute(uri: "/metrics", method: .get)
            #expect(refused.status == .forbidden)
            #expect((try? Wire.problem(refused).code) == "metrics_forbidden")
            let allowed = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer 0123456789abcdef0123"])
            #expect(allowed.status == .ok)
        }
    }
}
