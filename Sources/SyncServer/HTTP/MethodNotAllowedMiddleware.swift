import Hummingbird

/// Answers 405 with `Allow` when a known path is asked with another method; the router alone
/// answers 404, which sends an operator looking for a missing route instead of a wrong verb.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Every route's path and the methods it accepts.
    let routes: [String: [HTTPRequest.Method]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let methods = routes[request.uri.path], !methods.contains(request.method) else { throw error }
            let allowed = methods.map(\.rawValue).joined(separator: ", ")
            var problem = Problem(.methodNotAllowed, "method_not_allowed", "\(request.uri.path) accepts \(allowed) only")
            problem.headers[.allow] = allowed
            throw problem
        }
    }
}
