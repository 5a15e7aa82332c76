import Testing
import TwineTesting

/// Records every event in order.
final class Recorder: Protocol {
  var events: [String] = []
  var closeOnData = false

  override func connectionMade() { events.append("made") }
  override func dataReceived(_ data: RawSpan) {
    events.append("data:\(data.utf8String)")
    if closeOnData { transport.loseConnection() }
  }
  override func connectionLost(_ reason: CloseReason) { events.append("lost:\(reason)") }
}

/// Refuses every connection.
final class RefusingFactory: Factory {
  override func buildProtocol(_ peer: SocketAddress) -> Protocol? { nil }
}

@Suite("StringTransport behaves like the real transport")
struct StringTransportTests {
  @Test("events come in order, connectionLost once, nothing after it")
  func eventOrder() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    let proto = Recorder()
    transport.connect(proto)
    transport.receive("a")
    transport.loseConnection()
    transport.loseConnection()
    transport.receive("b")
    #expect(proto.events == ["made", "data:a", "lost:connection closed cleanly"])
  }

  @Test("a close asked for inside dataReceived happens after it returns")
  func closeInsideCallbackIsDeferred() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    let proto = Recorder()
    proto.closeOnData = true
    transport.connect(proto)
    transport.receive("x")
    #expect(proto.events == ["made", "data:x", "lost:connection closed cleanly"])
  }

  @Test("writes after close are ignored")
  func writeAfterClose() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    transport.connect(Recorder())
    transport.abortConnection()
    transport.write("ignored")
    #expect(transport.written.isEmpty)
    #expect(transport.closeReason == .aborted)
  }

  @Test("paused input is held and delivered on resume")
  func pauseHoldsInput() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    let proto = Recorder()
    transport.connect(proto)
    transport.pauseProducing()
    transport.receive("held")
    #expect(proto.events == ["made"])
    transport.resumeProducing()
    #expect(proto.events == ["made", "data:held"])
  }

  @Test("a factory that returns nil refuses and counts it")
  func refusal() {
    let factory = RefusingFactory(Recorder.self)
    #expect(StringTransport().connect(factory: factory) == nil)
    #expect(factory.counters.refused == 1)
    #expect(factory.counters.accepted == 0)
  }

  @Test("writeSequence writes each part in order")
  func writeSequence() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    transport.connect(Recorder())
    transport.writeSequence([[1, 2], [], [3]])
    #expect(transport.written == [1, 2, 3])
  }
}

@Suite("SocketAddress")
struct SocketAddressTests {
  @Test("formats IPv4 and IPv6 the usual way")
  func formatting() {
    #expect(SocketAddress(ipv4: (127, 0, 0, 1), port: 8025).description == "127.0.0.1:8025")
    #expect(SocketAddress(.ipv6(high: 0, low: 1, scopeID: 0), port: 80).description == "[::1]:80")
    #expect(
      SocketAddress(.ipv6(high: 0x2001_0db8_0000_0000, low: 0x0000_0000_0000_0001, scopeID: 0), port: 1).host
        == "2001:db8::1")
    #expect(SocketAddress(.ipv6(high: 0, low: 0xffff_7f00_0001, scopeID: 0), port: 1).host == "::ffff:127.0.0.1")
    #expect(
      SocketAddress(.ipv6(high: 0x2001_0db8_0001_0002, low: 0x0003_0004_0005_0006, scopeID: 0), port: 1).host
        == "2001:db8:1:2:3:4:5:6")
    #expect(SocketAddress(.ipv6(high: 0, low: 0, scopeID: 0), port: 1).host == "::")
  }
}

@Suite("StringTransport peer credentials")
struct StringTransportCredentialTests {
  /// Greets only peers running as uid 0.
  final class RootOnly: Protocol {
    override func connectionMade() {
      transport.write(transport.peerCredentials?.uid == 0 ? "welcome" : "denied")
      transport.loseConnection()
    }
  }

  @Test("peerCredentials is nil by default, as over TCP, and what a test sets otherwise")
  func credentials() {
    let plain = StringTransport()
    plain.connect(RootOnly())
    #expect(plain.peerCredentials == nil)
    #expect(plain.writtenString == "denied")

    let root = StringTransport(peer: SocketAddress(.unix(path: ""), port: 0))
    root.peerCredentials = PeerCredentials(pid: 42, uid: 0, gid: 0)
    root.connect(RootOnly())
    #expect(root.writtenString == "welcome")
    #expect(root.peerCredentials?.description == "pid=42 uid=0 gid=0")
  }
}
