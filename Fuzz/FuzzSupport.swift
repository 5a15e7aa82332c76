// Shared by the fuzz targets: input-derived read splits and a failing check.
// Each target is built as `swiftc -sanitize=fuzzer,address -parse-as-library FuzzSupport.swift Target.swift`
// against TwineCore, TwineTesting and TwineProtocols (see Makefile).

#if canImport(Glibc)
  import Glibc
#endif

/// SplitMix64, seeded from the input, so a crash file replays the same reads.
struct SplitMix64 {
  private var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A fuzz input: two option bytes, an 8-byte split seed, then the stream.
struct FuzzInput {
  let options: UInt8
  let limit: UInt8
  let stream: [UInt8]
  let reads: [ArraySlice<UInt8>]

  init?(_ data: UnsafePointer<UInt8>, _ size: Int) {
    guard size >= 10 else { return nil }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    options = bytes[0]
    limit = bytes[1]
    var seed: UInt64 = 0
    for byte in bytes[2..<10] { seed = seed << 8 | UInt64(byte) }
    stream = Array(bytes[10...])
    // Reads of 1 to 2^k bytes, k chosen per read: many tiny reads and some large ones.
    var rng = SplitMix64(seed: seed)
    var reads: [ArraySlice<UInt8>] = []
    var index = 0
    while index < stream.count {
      let size = 1 + Int(rng.next() % (UInt64(1) << (rng.next() % 12)))
      let end = min(stream.count, index + size)
      reads.append(stream[index..<end])
      index = end
    }
    self.reads = reads
  }
}

/// Stops the fuzzer with `message` (libFuzzer keeps the input) when `condition` is false.
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
  if !condition {
    var text = "invariant broken: \(message())\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
  }
}
