// Fuzzes LineReceiver against a reference splitter: the lines delivered, the over-long
// lines reported and whether the connection closed must match it, for any split of the
// stream, with pauses between lines; the bytes held never exceed maxLength + delimiter − 1.

import TwineProtocols
import TwineTesting

final class FuzzLines: LineReceiver {
  var lines: [[UInt8]] = []
  var exceeded = 0
  var keepOpen = false
  var pauseByte: UInt8?
  override func lineReceived(_ line: RawSpan) {
    lines.append(line.bytes)
    if let pauseByte, line.bytes.contains(pauseByte) { pauseProducing() }
  }
  override func lineLengthExceeded(_ length: Int) {
    check(length > maxLength, "lineLengthExceeded(\(length)) with maxLength \(maxLength)")
    exceeded += 1
    if !keepOpen { super.lineLengthExceeded(length) }
  }
}

let delimiters: [[UInt8]] = [
  [13, 10], [10], [0], Array("aa".utf8), Array("ab|".utf8), [13, 10, 13, 10], Array("aba".utf8),
]

/// What LineReceiver must do with `stream`: the lines, the over-long count, and whether it closes.
func reference(_ stream: [UInt8], delimiter: [UInt8], maxLength: Int, keepOpen: Bool) -> (
  lines: [[UInt8]], exceeded: Int, closed: Bool
) {
  var lines: [[UInt8]] = []
  var exceeded = 0
  var position = 0
  let width = delimiter.count
  while position < stream.count {
    var found: Int?
    var start = position
    while start + width <= stream.count {
      if stream[start..<(start + width)].elementsEqual(delimiter) {
        found = start
        break
      }
      start += 1
    }
    guard let end = found else {
      // An unfinished line: refused once maxLength + width bytes of it are held.
      if stream.count - position >= maxLength + width {
        exceeded += 1
        if !keepOpen { return (lines, exceeded, true) }
      }
      break
    }
    if end - position > maxLength {
      exceeded += 1
      if !keepOpen { return (lines, exceeded, true) }
    } else {
      lines.append(Array(stream[position..<end]))
    }
    position = end + width
  }
  return (lines, exceeded, false)
}

/// libFuzzer's entry point: one input, checked against the reference.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLineReceiver(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard let input = FuzzInput(data, size) else { return 0 }
  let delimiter = delimiters[Int(input.options & 7) % delimiters.count]
  let proto = FuzzLines()
  proto.delimiter = delimiter
  proto.maxLength = Int(input.limit) + 1
  proto.keepOpen = input.options & 8 != 0
  proto.pauseByte = input.options & 16 != 0 ? UInt8(ascii: "p") : nil
  let transport = StringTransport()
  transport.connect(proto)
  for read in input.reads {
    transport.receive(Array(read))
    while proto.isPaused && !transport.isClosed { proto.resumeProducing() }
    check(
      proto.bufferedByteCount <= proto.maxLength + delimiter.count - 1,
      "holds \(proto.bufferedByteCount) bytes, maxLength \(proto.maxLength)")
  }
  let expected = reference(
    input.stream, delimiter: delimiter, maxLength: proto.maxLength, keepOpen: proto.keepOpen)
  check(proto.lines == expected.lines, "lines \(proto.lines) != reference \(expected.lines)")
  check(proto.exceeded == expected.exceeded, "exceeded \(proto.exceeded) != \(expected.exceeded)")
  check(transport.isClosed == expected.closed, "closed: \(transport.isClosed), reference \(expected.closed)")
  if expected.closed {
    check(
      transport.closeReason == .protocolError("line longer than \(proto.maxLength) bytes"),
      "close reason \(String(describing: transport.closeReason))")
  }
  // Re-encoded, the lines are the stream's lines in order (a prefix of it, when none was skipped).
  if expected.exceeded == 0 {
    let encoded = proto.lines.flatMap { $0 + delimiter }
    check(input.stream.starts(with: encoded), "re-encoded lines are not a prefix of the input")
  }
  transport.peerClosed()
  return 0
}
