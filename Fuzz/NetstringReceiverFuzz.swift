// Fuzzes NetstringReceiver against a reference parser: the strings delivered and whether
// (and why) the connection closed must match it for any split; at most maxLength bytes held.

import TwineProtocols
import TwineTesting

final class FuzzNetstrings: NetstringReceiver {
  var strings: [[UInt8]] = []
  var pauseByte: UInt8?
  override func stringReceived(_ string: RawSpan) {
    strings.append(string.bytes)
    if let pauseByte, string.bytes.contains(pauseByte) { pauseProducing() }
  }
}

/// The strings in `stream`, and the error that ends it (nil if the stream is only cut short).
func reference(_ stream: [UInt8], maxLength: Int) -> (strings: [[UInt8]], error: String?) {
  var strings: [[UInt8]] = []
  var index = 0
  while index < stream.count {
    var length = 0
    var digits = 0
    while true {
      guard index < stream.count else { return (strings, nil) }
      let byte = stream[index]
      index += 1
      if byte >= 48 && byte <= 57 {
        if digits == 1 && length == 0 { return (strings, "netstring length has a leading zero") }
        length = length * 10 + Int(byte - 48)
        digits += 1
        if length > maxLength { return (strings, "netstring longer than \(maxLength) bytes") }
      } else if byte == 58 {
        if digits == 0 { return (strings, "netstring length is empty") }
        break
      } else {
        return (strings, "netstring length must be decimal digits, got byte 0x\(String(byte, radix: 16))")
      }
    }
    guard stream.count - index > length else { return (strings, nil) }
    guard stream[index + length] == 44 else { return (strings, "netstring not terminated by ','") }
    strings.append(Array(stream[index..<(index + length)]))
    index += length + 1
  }
  return (strings, nil)
}

/// libFuzzer's entry point: one input, checked against the reference.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetstringReceiver(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard let input = FuzzInput(data, size) else { return 0 }
  let proto = FuzzNetstrings()
  proto.maxLength = Int(input.limit) * 4
  proto.pauseByte = input.options & 1 != 0 ? UInt8(ascii: "p") : nil
  let transport = StringTransport()
  transport.connect(proto)
  for read in input.reads {
    transport.receive(Array(read))
    while proto.isPaused && !transport.isClosed { proto.resumeProducing() }
    check(proto.bufferedByteCount <= proto.maxLength, "holds \(proto.bufferedByteCount) bytes")
  }
  let expected = reference(input.stream, maxLength: proto.maxLength)
  check(proto.strings == expected.strings, "strings \(proto.strings) != reference \(expected.strings)")
  let reason = expected.error.map { CloseReason.protocolError($0) }
  check(
    transport.closeReason == reason,
    "closed with \(String(describing: transport.closeReason)), reference \(String(describing: reason))")
  let encoded: [UInt8] = proto.strings.flatMap { (string: [UInt8]) -> [UInt8] in
    Array("\(string.count):".utf8) + string + [44]
  }
  check(input.stream.starts(with: encoded), "re-encoded strings are not a prefix of the input")
  transport.peerClosed()
  return 0
}
