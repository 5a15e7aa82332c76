import Testing
import TwineProtocols
import TwineTesting

@Suite("NetstringReceiver")
struct NetstringReceiverTests {
  @Test("decodes strings, the empty one included, whole in one read or split")
  func decodes() {
    let proto = NetstringCollector()
    let transport = feed(proto, [Array("5:hello,0:,3:a".utf8), Array("b".utf8), Array("c,".utf8)])
    defer { transport.peerClosed() }
    #expect(proto.events == [.frame(Array("hello".utf8)), .frame([]), .frame(Array("abc".utf8))])
  }

  @Test("sendString writes len:bytes,")
  func encodes() {
    let proto = NetstringCollector()
    let transport = feed(proto, [])
    defer { transport.peerClosed() }
    proto.sendString("hello")
    proto.sendString([])
    #expect(transport.writtenString == "5:hello,0:,")
  }

  static let malformed: [(input: String, message: String)] = [
    ("x:abc,", "netstring length must be decimal digits, got byte 0x78"),
    ("-1:a,", "netstring length must be decimal digits, got byte 0x2d"),
    (" 3:abc,", "netstring length must be decimal digits, got byte 0x20"),
    (":abc,", "netstring length is empty"),
    ("01:a,", "netstring length has a leading zero"),
    ("00:,", "netstring length has a leading zero"),
    ("3:abcd", "netstring not terminated by ','"),
    ("0:x", "netstring not terminated by ','"),
    ("100000:", "netstring longer than 99999 bytes"),
    ("1099511627776:", "netstring longer than 99999 bytes"),
    ("99999999999999999999999999999999", "netstring longer than 99999 bytes"),
  ]

  @Test("malformed input closes with a protocolError saying what is wrong, and nothing after it is delivered")
  func malformedInput() {
    for (input, message) in Self.malformed {
      for split in Split.allCases {
        var rng = SplitMix64(seed: 5)
        let proto = NetstringCollector()
        let stream = Array("2:ok,".utf8) + Array(input.utf8) + Array("2:no,".utf8)
        let transport = feed(proto, split.chunks(stream, &rng))
        #expect(proto.events == [.frame(Array("ok".utf8))], "\(input.debugDescription), \(split)")
        #expect(protocolErrorMessage(transport.closeReason) == message, "\(input.debugDescription), \(split)")
        #expect(proto.lostReason == transport.closeReason)
      }
    }
  }

  @Test("a huge announced length fails within a digit of maxLength's width, holding nothing")
  func hugeLengthFailsEarly() {
    let proto = NetstringCollector()
    let transport = StringTransport()
    transport.connect(proto)
    var sent = 0
    for digit in Array("1099511627776:".utf8) where !transport.isClosed {
      transport.receive([digit])
      sent += 1
      #expect(proto.bufferedByteCount == 0)
    }
    #expect(sent == 6)  // 109951 > 99999
    #expect(protocolErrorMessage(transport.closeReason) == "netstring longer than 99999 bytes")
  }

  @Test("a string split across reads holds at most maxLength bytes")
  func boundedBuffer() {
    let proto = NetstringCollector()
    proto.maxLength = 1000
    let transport = feed(proto, [Array("1000:".utf8)])
    defer { transport.peerClosed() }
    for _ in 0..<10 {
      transport.receive([UInt8](repeating: 1, count: 100))
      #expect(proto.bufferedByteCount <= 1000)
    }
    transport.receive(",")
    #expect(proto.events == [.frame([UInt8](repeating: 1, count: 1000))])
    #expect(proto.bufferedByteCount == 0)
  }
}
