/// The HTTP headers the protocol adds beside its frames (protocol/SPEC.md 7.9), by lower-case name:
/// one definition for the server and the client.
public enum ProtocolHeader {
    /// On every sync answer: the server store's epoch, which changes when the store is found restored.
    public static let storeEpoch = "clinicsync-store-epoch"
    /// On sync requests: the highest `acknowledged` the server has told this replica, as evidence.
    public static let acknowledged = "clinicsync-acknowledged"
    /// On sync requests: how many local changes the terminal has not yet sent, for the operator's device list.
    public static let pending = "clinicsync-pending"
    /// On sync requests: the terminal's app version, for the operator's device list.
    public static let appVersion = "clinicsync-app-version"
    /// On sync requests: "1" asks for a new device token (SPEC 8.2).
    public static let rotateToken = "clinicsync-rotate-token"
    /// On sync answers: the device's new token; its current one works until this one is first used.
    public static let newToken = "clinicsync-new-token"

    /// On `429 rate_limited`: whole seconds to wait before the device asks again (RFC 9110's own header).
    public static let retryAfter = "retry-after"

    /// The answer headers a client transport must hand to the sync engine.
    public static let answerHeaders = [storeEpoch, newToken, retryAfter]
}
