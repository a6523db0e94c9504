import ArgumentParser

/// A one-line failure for the terminal: printed as `Error: …`, exit code 1, no stack trace.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
