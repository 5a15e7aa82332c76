import Testing
import TutorialServers
import TwineProtocols
import TwineTesting

/// Records what reaches it through a wrapper.
final class Recorder: Protocol {
  var events: [String] = []
  override func connectionMade() { events.append("made") }
  override func dataReceived(_ data: RawSpan) {
    events.append("data \(data.utf8String)")
    transport.write(data)
  }
  override func connectionLost(_ reason: CloseReason) { events.append("lost \(reason)") }
}

@Suite("Policies on the in-memory transport")
struct PolicyUnitTests {
  @Test("a wrapper passes events up and calls down, and shares the wrapped factory's counters")
  func wrapperForwards() throws {
    let inner = Factory(Recorder.self)
    let factory = WrappingFactory(wrapping: inner)
    let transport = StringTransport()
    let wrapper = try #require(transport.connect(factory: factory) as? ProtocolWrapper)
    let recorder = try #require(wrapper.wrapped as? Recorder)
    transport.receive("hi")
    #expect(transport.writtenString == "hi")
    #expect(recorder.transport === wrapper)
    recorder.transport.loseConnection(reason: .protocolError("bad"))
    #expect(recorder.events == ["made", "data hi", "lost protocol error: bad"])
    #expect(inner.counters.accepted == 1 && inner.counters.live == 0 && inner.counters.bytesOut == 2)
  }

  @Test("the total limit refuses the connection past it and frees a place when one closes")
  func totalLimit() throws {
    let factory = ConnectionLimitFactory(wrapping: Factory(Echo.self), maxConnections: 2)
    let a = StringTransport()
    let b = StringTransport()
    let c = StringTransport()
    #expect(a.connect(factory: factory) != nil)
    #expect(b.connect(factory: factory) != nil)
    #expect(c.connect(factory: factory) == nil)
    #expect(factory.counters.refused == 1 && factory.open == 2)
    a.peerClosed()
    #expect(factory.open == 1)
    let d = StringTransport()
    #expect(d.connect(factory: factory) != nil)
    b.peerClosed()
    d.peerClosed()
  }

  @Test("the per-peer limit counts each address apart; a refusal message is sent before closing")
  func perPeerLimitWithMessage() throws {
    let factory = ConnectionLimitFactory(
      wrapping: Factory(Echo.self), maxPerPeer: 1, refusalMessage: "Too many connections, try later")
    let first = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 2), port: 1000))
    let second = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 2), port: 1001))
    let other = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 3), port: 1000))
    first.connect(factory: factory)
    second.connect(factory: factory)
    other.connect(factory: factory)
    #expect(second.writtenString == "Too many connections, try later" && second.closeReason == .closedByUs)
    #expect(first.closeReason == nil && other.closeReason == nil)
    #expect(factory.openConnections(from: "127.0.0.2") == 1)
    #expect(factory.counters.refused == 1)
    first.peerClosed()
    other.peerClosed()
    #expect(factory.openConnections(from: "127.0.0.2") == 0 && factory.open == 0)
  }

  @Test("the idle timeout aborts a silent connection with .timedOut; traffic restarts it")
  func idleTimeout() throws {
    let factory = TimeoutFactory(wrapping: Factory(Echo.self), timeout: 10)
    let transport = StringTransport()
    transport.connect(factory: factory)
    transport.clock.advance(9)
    transport.receive("x")  // restarts the timer
    transport.clock.advance(9)
    #expect(transport.closeReason == nil)
    transport.clock.advance(1.5)
    #expect(transport.closeReason == .timedOut)
    #expect(transport.clock.pendingCalls.isEmpty)
  }

  @Test("a connection that closes first leaves no timer behind")
  func idleTimerCancelledOnClose() throws {
    let factory = TimeoutFactory(wrapping: Factory(Echo.self), timeout: 10)
    let transport = StringTransport()
    transport.connect(factory: factory)
    transport.peerClosed()
    #expect(transport.clock.pendingCalls.isEmpty)
    transport.clock.advance(20)
    #expect(transport.closeReason == .closedByPeer)
  }

  @Test("throttling applies the per-connection limit and the shared group at connect")
  func throttlingApplied() throws {
    let limit = RateLimit(readBytesPerSecond: 1000, writeBytesPerSecond: 2000)
    let factory = ThrottlingFactory(
      wrapping: Factory(Echo.self), perConnection: limit, total: RateLimit(readBytesPerSecond: 5000))
    let a = StringTransport()
    let b = StringTransport()
    a.connect(factory: factory)
    b.connect(factory: factory)
    #expect(a.rateLimit == limit)
    #expect(a.rateLimitGroups.count == 1 && b.rateLimitGroups.first === a.rateLimitGroups.first)
    #expect(a.rateLimitGroups.first?.limit.readBytesPerSecond == 5000)
    a.peerClosed()
    b.peerClosed()
  }

  @Test("flow control on the in-memory transport pauses input past the high-water mark and resumes it")
  func inMemoryFlowControl() throws {
    let transport = StringTransport()
    transport.holdWrites = true
    transport.writeBufferLimits = WriteBufferLimits(lowWater: 2, highWater: 4, hardLimit: 100)
    let factory = Factory(Recorder.self)
    let recorder = try #require(transport.connect(factory: factory) as? Recorder)
    transport.receive("12345")  // echoed: 5 held > 4, input paused
    transport.receive("later")
    #expect(transport.writePaused && recorder.events == ["made", "data 12345"])
    transport.flushWrites(3)  // 2 held: resumes; the held input arrives, and its echo pauses again
    #expect(recorder.events.last == "data later")
    transport.flushWrites()
    #expect(!transport.writePaused)
    #expect(transport.writtenString == "12345later")
    transport.loseConnection()
  }

  @Test("the in-memory transport aborts with .bufferOverflow past the hard limit")
  func inMemoryHardLimit() throws {
    let transport = StringTransport()
    transport.holdWrites = true
    transport.writeBufferLimits = WriteBufferLimits(lowWater: 0, highWater: 4, hardLimit: 8)
    transport.connect(factory: Factory(Recorder.self))
    transport.receive("123456789")
    #expect(transport.closeReason == .bufferOverflow)
  }
}

/// Answers after the peer's half-close.
final class HalfCloser: Protocol, HalfCloseable {
  func readConnectionLost() {
    transport.write("bye")
    transport.loseWriteConnection()
  }
}

@Suite("Half-close on the in-memory transport")
struct HalfCloseUnitTests {
  @Test("a half-closeable protocol behind a wrapper answers after the peer's half-close, then closes")
  func halfCloseThroughWrapper() {
    let transport = StringTransport()
    transport.connect(factory: TimeoutFactory(wrapping: Factory(HalfCloser.self), timeout: 5))
    transport.peerHalfClosed()
    #expect(transport.writtenString == "bye" && transport.writeClosed)
    #expect(transport.closeReason == .closedByUs)
  }

  @Test("a protocol without the opt-in is closed by the peer's half-close")
  func plainProtocolClosed() {
    let transport = StringTransport()
    transport.connect(factory: Factory(Echo.self))
    transport.peerHalfClosed()
    #expect(transport.closeReason == .closedByPeer)
  }
}

@Suite("Wrappers pass the transport's features through")
struct WrapperPassThroughTests {
  @Test("startTLS and peer credentials reach the real transport through a policy wrapper")
  func startTLSAndCredentialsPassThrough() throws {
    final class Upgrader: Protocol {
      override func connectionMade() {
        transport.write(transport.peerCredentials.map { "uid \($0.uid)" } ?? "none")
        transport.startTLS(.server(certificateFile: "c.pem", privateKeyFile: "k.pem"))
      }
    }
    let transport = StringTransport()
    transport.peerCredentials = PeerCredentials(pid: 7, uid: 1000, gid: 1000)
    transport.connect(factory: TimeoutFactory(wrapping: Factory(Upgrader.self), timeout: 5))
    #expect(transport.writtenString == "uid 1000")
    #expect(transport.startedTLS?.certificateFile == "c.pem")
    #expect(transport.closeReason == nil)
    transport.peerClosed()
  }
}
