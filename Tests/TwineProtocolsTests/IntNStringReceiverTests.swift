import Testing
import TwineProtocols
import TwineTesting

final class Int32Strings: Int32StringReceiver {
  var strings: [[UInt8]] = []
  override func stringReceived(_ string: RawSpan) { strings.append(string.bytes) }
}

final class Int16Strings: Int16StringReceiver {}
final class Int8Strings: Int8StringReceiver {}

@Suite("IntNStringReceiver")
struct IntNStringReceiverTests {
  @Test("the three Twisted classes have 4, 2 and 1-byte prefixes")
  func prefixSizes() {
    #expect(Int32Strings().prefixSize == 4)
    #expect(Int16Strings().prefixSize == 2)
    #expect(Int8Strings().prefixSize == 1)
    #expect(Int8Strings().prefixLimit == 255)
    #expect(Int16Strings().prefixLimit == 65535)
  }

  @Test("decodes big-endian prefixed strings, split anywhere")
  func decodes() {
    let proto = Int32Strings()
    let transport = feed(proto, [[0, 0], [0, 3, 97, 98], [99, 0, 0, 0, 0, 0, 0, 0, 1], [122]])
    defer { transport.peerClosed() }
    #expect(proto.strings == [[97, 98, 99], [], [122]])
  }

  @Test("sendString writes the big-endian length, then the bytes")
  func encodes() throws {
    let proto = Int32Strings()
    let transport = feed(proto, [])
    defer { transport.peerClosed() }
    try proto.sendString("hi")
    let long = [UInt8](repeating: 5, count: 0x1234)
    try proto.sendString(long)
    #expect(transport.written == [0, 0, 0, 2, 104, 105] + [0, 0, 0x12, 0x34] + long)
  }

  @Test("sendString refuses a string its prefix cannot announce, and sends nothing")
  func tooLongToSend() {
    let proto = Int8Strings()
    let transport = feed(proto, [])
    defer { transport.peerClosed() }
    #expect(throws: StringTooLongError(length: 256, maximum: 255)) {
      try proto.sendString([UInt8](repeating: 0, count: 256))
    }
    #expect(transport.written.isEmpty)
  }

  @Test("a prefix over maxLength closes with a protocolError before any payload is read; nothing after")
  func overMaxLength() {
    for split in Split.allCases {
      var rng = SplitMix64(seed: 3)
      let proto = IntNCollector(prefixSize: 4)
      let stream: [UInt8] = [0, 0, 0, 1, 33] + [0xFF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 1000)
      let transport = feed(proto, split.chunks(stream, &rng))
      #expect(proto.events == [.frame([33])], "\(split)")
      #expect(
        protocolErrorMessage(transport.closeReason) == "string of 4294967295 bytes is longer than 99999", "\(split)")
      #expect(proto.bufferedByteCount == 0)
    }
  }

  @Test("an 8-byte prefix announcing more than Int.max is refused, not trapped on")
  func hugeEightBytePrefix() {
    let proto = IntNCollector(prefixSize: 8)
    let transport = feed(proto, [[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1]])
    #expect(proto.events.isEmpty)
    #expect(protocolErrorMessage(transport.closeReason) == "string of \(Int.max) bytes is longer than 99999")
  }
}
