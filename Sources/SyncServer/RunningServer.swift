import Hummingbird
import Logging
import ServiceLifecycle

/// Runs the server on loopback for the duration of `body`, which receives the port it listens on.
/// For the demo, benchmarks and tests: structured, so the server stops when `body` returns or throws.
public func withRunningServer<Store: ServerStore, T: Sendable>(
    _ configuration: ServerConfiguration, store: Store, metrics: ServerMetrics = ServerMetrics(), logger: Logger,
    _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = buildApplication(configuration, store: store, metrics: metrics, logger: logger) { port in
        continuation.yield(port)
        continuation.finish()
    }
    let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            // If the server cannot start (port taken), end the port stream so the caller sees the error.
            defer { continuation.finish() }
            try await services.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await group.waitForAll()
            throw CancellationError()
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(port))
        } catch {
            result = .failure(error)
        }
        await services.triggerGracefulShutdown()
        try await group.waitForAll()
        return try result.get()
    }
}
