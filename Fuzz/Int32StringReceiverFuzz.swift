// Fuzzes Int32StringReceiver against a reference parser: the strings delivered and whether
// the connection closed must match it for any split; at most maxLength + 3 bytes held.

import TwineProtocols
import TwineTesting

final class FuzzInt32: Int32StringReceiver {
  var strings: [[UInt8]] = []
  var pauseByte: UInt8?
  override func stringReceived(_ string: RawSpan) {
    strings.append(string.bytes)
    if let pauseByte, string.bytes.contains(pauseByte) { pauseProducing() }
  }
}

/// The strings in `stream`, and the over-long length that ends it, if any.
func reference(_ stream: [UInt8], maxLength: Int) -> (strings: [[UInt8]], overlong: Int?) {
  var strings: [[UInt8]] = []
  var index = 0
  while stream.count - index >= 4 {
    let length = stream[index..<(index + 4)].reduce(0) { $0 << 8 | Int($1) }
    index += 4
    if length > maxLength { return (strings, length) }
    guard stream.count - index >= length else { break }
    strings.append(Array(stream[index..<(index + length)]))
    index += length
  }
  return (strings, nil)
}

/// libFuzzer's entry point: one input, checked against the reference.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInt32StringReceiver(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard let input = FuzzInput(data, size) else { return 0 }
  let proto = FuzzInt32()
  proto.maxLength = Int(input.limit) * 8
  proto.pauseByte = input.options & 1 != 0 ? UInt8(ascii: "p") : nil
  let transport = StringTransport()
  transport.connect(proto)
  for read in input.reads {
    transport.receive(Array(read))
    while proto.isPaused && !transport.isClosed { proto.resumeProducing() }
    check(proto.bufferedByteCount <= proto.maxLength + 3, "holds \(proto.bufferedByteCount) bytes")
  }
  let expected = reference(input.stream, maxLength: proto.maxLength)
  check(proto.strings == expected.strings, "strings \(proto.strings) != reference \(expected.strings)")
  let reason = expected.overlong.map {
    CloseReason.protocolError("string of \($0) bytes is longer than \(proto.maxLength)")
  }
  check(
    transport.closeReason == reason,
    "closed with \(String(describing: transport.closeReason)), reference \(String(describing: reason))")
  let encoded: [UInt8] = proto.strings.flatMap { (string: [UInt8]) -> [UInt8] in
    (0..<4).reversed().map { UInt8(truncatingIfNeeded: string.count >> (8 * $0)) } + string
  }
  check(input.stream.starts(with: encoded), "re-encoded strings are not a prefix of the input")
  transport.peerClosed()
  return 0
}
