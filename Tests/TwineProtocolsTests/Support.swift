import Testing
import TwineProtocols
import TwineTesting

/// SplitMix64: a tiny seeded generator, so every random test can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
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

/// The seeds every property test runs with.
let seeds: [UInt64] = [1, 2, 3, 42, 1234, 0xDEAD_BEEF, 7_777_777, 31337]

/// What a receiver handed up, in order.
enum Event: Equatable, CustomStringConvertible {
  case frame([UInt8])
  case raw([UInt8])
  case exceeded(Int)

  var description: String {
    switch self {
    case .frame(let bytes): "frame(\(String(decoding: bytes, as: UTF8.self).debugDescription))"
    case .raw(let bytes): "raw(\(String(decoding: bytes, as: UTF8.self).debugDescription))"
    case .exceeded(let length): "exceeded(\(length))"
    }
  }
}

/// How a byte stream is cut into reads.
enum Split: CaseIterable, CustomStringConvertible {
  case byteByByte, random, allAtOnce

  func chunks(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [[UInt8]] {
    switch self {
    case .byteByByte: return bytes.map { [$0] }
    case .allAtOnce: return [bytes]
    case .random:
      var chunks: [[UInt8]] = []
      var index = 0
      while index < bytes.count {
        let size = Int.random(in: 1...max(1, Int.random(in: 1...64, using: &rng) * 8), using: &rng)
        let end = min(bytes.count, index + size)
        chunks.append(Array(bytes[index..<end]))
        index = end
      }
      return chunks
    }
  }

  var description: String {
    switch self {
    case .byteByByte: "byte by byte"
    case .random: "random splits"
    case .allAtOnce: "all at once"
    }
  }
}

/// Records lines, raw data and over-long lines. With `rawAfter`, a line `RAW:n` switches to
/// raw mode for the next n bytes, then back to lines with what is left (`setLineMode(extra:)`).
/// With `pauseOn`, a line containing that byte pauses delivery.
final class LineCollector: LineReceiver {
  var events: [Event] = []
  var lostReason: CloseReason?
  var switchesToRaw = false
  var pauseOn: UInt8?
  var keepOpenOnOverlong = false
  private var rawLeft = 0
  private var rawBlock: [UInt8] = []

  override func lineReceived(_ line: RawSpan) {
    let bytes = line.bytes
    events.append(.frame(bytes))
    if switchesToRaw, bytes.starts(with: Array("RAW:".utf8)),
      let count = Int(String(decoding: bytes.dropFirst(4), as: UTF8.self))
    {
      rawLeft = count
      rawBlock = []
      setRawMode()
      if count == 0 { finishRaw(extra: []) }
    }
    if let pauseOn, bytes.contains(pauseOn) { pauseProducing() }
  }

  override func rawDataReceived(_ data: RawSpan) {
    guard switchesToRaw else {
      events.append(.raw(data.bytes))
      return
    }
    let take = min(rawLeft, data.byteCount)
    rawBlock += data.extracting(first: take).bytes
    rawLeft -= take
    if rawLeft == 0 { finishRaw(extra: data.extracting(droppingFirst: take)) }
  }

  private func finishRaw(extra: RawSpan) {
    events.append(.raw(rawBlock))
    rawBlock = []
    setLineMode(extra: extra)
  }

  private func finishRaw(extra: [UInt8]) {
    extra.withUnsafeBytes { finishRaw(extra: $0.bytes) }
  }

  override func lineLengthExceeded(_ length: Int) {
    events.append(.exceeded(length))
    if !keepOpenOnOverlong { super.lineLengthExceeded(length) }
  }

  override func connectionLost(_ reason: CloseReason) { lostReason = reason }
}

/// Records netstrings.
final class NetstringCollector: NetstringReceiver {
  var events: [Event] = []
  var lostReason: CloseReason?
  var pauseOn: UInt8?
  override func stringReceived(_ string: RawSpan) {
    events.append(.frame(string.bytes))
    if let pauseOn, string.bytes.contains(pauseOn) { pauseProducing() }
  }
  override func connectionLost(_ reason: CloseReason) { lostReason = reason }
}

/// Records length-prefixed strings; the prefix size is chosen at init.
final class IntNCollector: IntNStringReceiver {
  var events: [Event] = []
  var lostReason: CloseReason?
  var pauseOn: UInt8?
  override func stringReceived(_ string: RawSpan) {
    events.append(.frame(string.bytes))
    if let pauseOn, string.bytes.contains(pauseOn) { pauseProducing() }
  }
  override func connectionLost(_ reason: CloseReason) { lostReason = reason }
}

/// Connects `proto` to a new StringTransport, feeds `chunks` (resuming whenever the
/// receiver paused itself, as a consumer that caught up would), and returns the transport.
/// The caller ends the connection (`peerClosed()`) if it is still open.
@discardableResult
func feed(_ proto: FramingReceiver, _ chunks: [[UInt8]], resumeAfterEachRead: Bool = true) -> StringTransport {
  let transport = StringTransport()
  transport.connect(proto)
  for chunk in chunks {
    transport.receive(chunk)
    while resumeAfterEachRead && proto.isPaused { proto.resumeProducing() }
  }
  return transport
}

/// The message of a `.protocolError`, or nil.
func protocolErrorMessage(_ reason: CloseReason?) -> String? {
  if case .protocolError(let message) = reason { return message }
  return nil
}

/// Random bytes.
func randomBytes(_ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
  (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
}
