import FuzzChecks

/// libFuzzer's entry point: thin, the checks live in FuzzChecks so `swift test` replays findings.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try FrameFuzz.check(bytes)
    } catch {
        fatalError("fuzz-frames: \(error)")
    }
    return 0
}
