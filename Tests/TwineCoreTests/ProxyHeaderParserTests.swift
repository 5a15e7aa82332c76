import Testing
import TwineCore

/// The PROXY protocol parser against HAProxy's proxy-protocol.txt: its examples, every
/// split of a header over reads, and each kind of malformed or oversized header.
@Suite("PROXY protocol header parser")
struct ProxyHeaderParserTests {
  static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ port: Int) -> SocketAddress {
    SocketAddress(ipv4: (a, b, c, d), port: port)
  }

  /// A version 2 header: signature, version/command, family/transport, length, body.
  static func v2(command: UInt8 = 0x21, family: UInt8, body: [UInt8]) -> [UInt8] {
    ProxyHeaderParser.signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
  }

  static func header(_ bytes: [UInt8], maxLength: Int = 4096) -> (ProxyHeader, Int)? {
    guard case .header(let header, let consumed) = ProxyHeaderParser.parse(bytes, maxLength: maxLength) else {
      return nil
    }
    return (header, consumed)
  }

  @Test("the specification's v1 examples: TCP4, TCP6 at full length, UNKNOWN with and without addresses")
  func specificationVersion1() throws {
    let tcp4 = Array("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /".utf8)
    let (header, consumed) = try #require(Self.header(tcp4))
    #expect(consumed == tcp4.count - 5)
    #expect(
      header
        == ProxyHeader(
          version: .v1, command: .proxy, source: Self.v4(192, 168, 0, 1, 56324),
          destination: Self.v4(192, 168, 0, 11, 443)))

    let widest4 = Array("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".utf8)
    #expect(widest4.count == 56)
    #expect(Self.header(widest4)?.0.source == Self.v4(255, 255, 255, 255, 65535))

    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    let widest6 = Array("PROXY TCP6 \(full) \(full) 65535 65535\r\n".utf8)
    #expect(widest6.count == 104)
    let six = try #require(Self.header(widest6)).0
    #expect(six.source == SocketAddress(.ipv6(high: .max, low: .max, scopeID: 0), port: 65535))

    let short6 = Array("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 2\r\n".utf8)
    let parsed6 = try #require(Self.header(short6)).0
    #expect(parsed6.source?.description == "[2001:db8::1]:1")
    #expect(parsed6.destination?.description == "[::ffff:10.0.0.1]:2")

    #expect(
      Self.header(Array("PROXY UNKNOWN\r\n".utf8))?.0
        == ProxyHeader(
          version: .v1, command: .proxy, source: nil, destination: nil))
    let longest = Array("PROXY UNKNOWN \(full) \(full) 65535 65535\r\n".utf8)
    #expect(longest.count == 107)
    #expect(Self.header(longest)?.0.source == nil)
  }

  @Test("v2 headers: TCP over IPv4 and IPv6, UNIX, LOCAL, UNSPEC, with TLVs kept")
  func version2() throws {
    let inet = Self.v2(
      family: 0x11, body: [10, 0, 0, 1, 10, 0, 0, 2, 0x1F, 0x90, 0x01, 0xBB] + [0x01, 0, 2, 0x68, 0x32])
    let (header, consumed) = try #require(Self.header(inet + [0xAA]))
    #expect(consumed == inet.count)
    #expect(header.source == Self.v4(10, 0, 0, 1, 8080) && header.destination == Self.v4(10, 0, 0, 2, 443))
    #expect(header.tlvs == [ProxyHeader.TLV(type: 1, value: Array("h2".utf8))])
    #expect(header.version == .v2 && header.command == .proxy)

    var six = [UInt8](repeating: 0, count: 36)
    six[0] = 0x20
    six[1] = 0x01
    six[15] = 1  // 2001::1
    six[31] = 2  // ::2
    six[32] = 0x30
    six[33] = 0x39  // 12345
    six[35] = 80
    let inet6 = try #require(Self.header(Self.v2(family: 0x21, body: six))).0
    #expect(inet6.source?.description == "[2001::1]:12345")
    #expect(inet6.destination?.description == "[::2]:80")

    var unix = [UInt8](repeating: 0, count: 216)
    unix.replaceSubrange(0..<10, with: Array("/tmp/c.sk\0".utf8))
    unix.replaceSubrange(108..<118, with: Array("/tmp/s.sk\0".utf8))
    let local = try #require(Self.header(Self.v2(family: 0x31, body: unix))).0
    #expect(local.source == SocketAddress(.unix(path: "/tmp/c.sk"), port: 0))
    #expect(local.destination == SocketAddress(.unix(path: "/tmp/s.sk"), port: 0))

    // LOCAL: whatever follows is skipped; no addresses.
    let health = try #require(Self.header(Self.v2(command: 0x20, family: 0x11, body: [1, 2, 3]))).0
    #expect(health.command == .local && health.source == nil)
    let unspecified = try #require(Self.header(Self.v2(family: 0x00, body: []))).0
    #expect(unspecified.command == .proxy && unspecified.source == nil)
  }

  @Test("a header split at every byte boundary, and one byte at a time, parses the same")
  func everySplit() throws {
    let headers = [
      Array("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n".utf8),
      Self.v2(family: 0x11, body: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]),
    ]
    for whole in headers {
      let stream = whole + Array("hello".utf8)
      let expected = try #require(Self.header(stream))
      for cut in 1..<stream.count {
        var parser = ProxyHeaderParser()
        let first = stream[..<cut].withUnsafeBytes { parser.parse($0) }
        if cut >= whole.count {
          #expect(first == .header(expected.0, consumed: whole.count), "cut \(cut)")
          continue
        }
        #expect(first == .needMore, "cut \(cut)")
        let second = stream[cut...].withUnsafeBytes { parser.parse($0) }
        #expect(second == .header(expected.0, consumed: whole.count - cut), "cut \(cut)")
      }
      var parser = ProxyHeaderParser()
      for (index, byte) in whole.enumerated() {
        let result = [byte].withUnsafeBytes { parser.parse($0) }
        #expect(result == (index == whole.count - 1 ? .header(expected.0, consumed: 1) : .needMore))
      }
    }
  }

  @Test(
    "malformed v1 headers are invalid",
    arguments: [
      "GET / HTTP/1.1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
      "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "PROXY TCP4 ::1 ::1 1 2\r\n", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
      "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY\r\n",
      "PROXY TCP6 1:::2 ::1 1 2\r\n", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    ])
  func malformedVersion1(_ text: String) {
    guard case .invalid = ProxyHeaderParser.parse(Array(text.utf8)) else {
      Issue.record("accepted \(text.debugDescription)")
      return
    }
  }

  @Test("a v1 line past 107 bytes is invalid as soon as the 107th byte arrives without \\n")
  func oversizedVersion1() {
    var parser = ProxyHeaderParser()
    let line = Array(("PROXY UNKNOWN " + String(repeating: "x", count: 92)).utf8)
    #expect(line.count == 106)
    #expect(line.withUnsafeBytes { parser.parse($0) } == .needMore)
    guard case .invalid(let why) = [UInt8(ascii: "x")].withUnsafeBytes({ parser.parse($0) }) else {
      Issue.record("a 107-byte line without its end was not refused")
      return
    }
    #expect(why.contains("longer than 107"))
  }

  @Test("malformed and oversized v2 headers are invalid, and say why")
  func malformedVersion2() {
    let cases: [([UInt8], String)] = [
      (Self.v2(command: 0x11, family: 0x11, body: []), "version 1"),
      (Self.v2(command: 0x22, family: 0x11, body: []), "unknown command 2"),
      (Self.v2(family: 0x41, body: []), "unknown address family 4"),
      (Self.v2(family: 0x13, body: []), "unknown transport 3"),
      (Self.v2(family: 0x11, body: [1, 2, 3]), "too short for its addresses"),
      (Self.v2(family: 0x11, body: [UInt8](repeating: 0, count: 12) + [1, 0]), "inside a TLV"),
      (Self.v2(family: 0x11, body: [UInt8](repeating: 0, count: 12) + [1, 0, 9, 1]), "runs past the header"),
      (Self.v2(family: 0x11, body: [UInt8](repeating: 0, count: 5000)), "more than the 4096 allowed"),
      (Array(ProxyHeaderParser.signature.prefix(5)) + [0x41], "no PROXY protocol header"),
    ]
    for (bytes, why) in cases {
      guard case .invalid(let text) = ProxyHeaderParser.parse(bytes) else {
        Issue.record("accepted \(bytes)")
        continue
      }
      #expect(text.contains(why), "\(text)")
    }
  }

  @Test("an oversized v2 header is refused from its first 16 bytes, before the body arrives")
  func oversizedVersion2Early() {
    var parser = ProxyHeaderParser(maxLength: 300)
    let head = ProxyHeaderParser.signature + [0x21, 0x11, 0x01, 0x2D]  // 16 + 301
    guard case .invalid = head.withUnsafeBytes({ parser.parse($0) }) else {
      Issue.record("waited for the body of an oversized header")
      return
    }
  }
}
