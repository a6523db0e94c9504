/// What build this is: `clinic-sync --version` and the server's `/healthz` say it.
public enum BuildInfo {
    /// The release version; bump it with every release.
    public static let version = "0.14.0"
}
