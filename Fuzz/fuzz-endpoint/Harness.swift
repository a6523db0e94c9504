import FuzzChecks
import Foundation

/// Set up once, at the first input; every input then starts from the same restored state.
private let fuzz: EndpointFuzz = {
    do {
        return try runBlocking { try await EndpointFuzz(directory: "/tmp/clinicsync-fuzz-endpoint-\(getpid())") }
    } catch {
        fatalError("fuzz-endpoint: setup failed: \(error)")
    }
}()

/// libFuzzer's entry point: thin, the checks live in FuzzChecks so `swift test` replays findings.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try runBlocking { try await fuzz.check(bytes) }
    } catch {
        fatalError("fuzz-endpoint: \(error)")
    }
    return 0
}
