/// How to run the sync server.
public struct ServerConfiguration: Sendable {
    /// Address to listen on; loopback by default.
    public var host: String
    /// TCP port; 0 picks a free one.
    public var port: Int
    /// Bounds on what clients may send and ask for.
    public var limits: SyncLimits
    /// The name the server logs under.
    public var serverName: String
    /// Seconds without a sync after which `/metrics` counts a device as stale.
    public var staleAfter: Double = 3_600
    /// Serve HTTPS with this certificate and key; nil serves plain HTTP.
    public var tls: ServerTLS?
    /// Who may read `/metrics`: this machine only unless a token is configured.
    public var metricsAccess = MetricsAccess.loopbackOnly
    /// Each device's request budget on `/v1/sync`; beyond it the answer is `429 rate_limited`. Nil: no limit.
    public var deviceRateLimit: DeviceRateLimit? = .standard

    public init(host: String = "127.0.0.1", port: Int = 8080, limits: SyncLimits = SyncLimits(), serverName: String = "clinic-sync") {
        self.host = host
        self.port = port
        self.limits = limits
        self.serverName = serverName
    }
}
