import Testing
import TutorialServers
import TwineTesting

@Suite("Echo on the in-memory transport")
struct EchoTests {
  @Test("writes back exactly what it receives, in order")
  func echoesEveryByte() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    transport.connect(factory: Factory(Echo.self))
    transport.receive("hello")
    transport.receive([0, 255, 13, 10])
    #expect(transport.written == Array("hello".utf8) + [0, 255, 13, 10])
    #expect(!transport.isClosed)
  }

  @Test("says nothing until spoken to, and nothing after the peer leaves")
  func silentWithoutInput() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    transport.connect(factory: Factory(Echo.self))
    #expect(transport.written.isEmpty)
    transport.peerClosed()
    transport.receive("late")
    #expect(transport.written.isEmpty)
    #expect(transport.closeReason == .closedByPeer)
  }

  @Test("counts bytes out in the factory")
  func countsBytes() {
    let factory = Factory(Echo.self)
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    transport.connect(factory: factory)
    transport.receive(String(repeating: "x", count: 1000))
    #expect(factory.counters.bytesOut == 1000)
  }
}

@Suite("HelloHD on the in-memory transport")
struct HelloHDTests {
  @Test("greets with the tutorial's exact line, then closes cleanly")
  func greetsThenCloses() {
    let transport = StringTransport()
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    transport.connect(factory: Factory(HelloHD.self))
    #expect(transport.writtenString == "Hello This is HD's Test protocol\r\n")
    #expect(transport.disconnecting)
    #expect(transport.closeReason == .closedByUs)
  }

  @Test("the connection is counted while open and not after")
  func countsTheConnection() {
    let factory = Factory(HelloHD.self)
    let transport = StringTransport()
    defer { transport.peerClosed() }
    transport.connect(factory: factory)
    #expect(factory.counters.accepted == 1)
    #expect(factory.counters.live == 0)
  }
}

@Suite("Counting Echo on the in-memory transport")
struct CountingEchoTests {
  @Test("serves up to the limit, refuses the next with the exact text, and counts it")
  func refusesPastTheLimit() {
    let factory = CountingFactory(maxConnections: 3)
    let served = (0..<3).map { _ in StringTransport() }
    defer { for transport in served { transport.peerClosed() } }
    for transport in served { transport.connect(factory: factory) }
    #expect(factory.counters.live == 3)
    for transport in served { #expect(!transport.disconnecting) }

    let refused = StringTransport()

    defer { refused.peerClosed() }  // a protocol and its transport hold each other until closed
    refused.connect(factory: factory)
    #expect(refused.writtenString == "Too many connections, try later")
    #expect(refused.closeReason == .closedByUs)
    #expect(factory.counters.refused == 1)
    #expect(factory.counters.live == 3)

    served[0].receive("still echoing")
    #expect(served[0].writtenString == "still echoing")
  }

  @Test("after clients leave the count returns to zero and new clients are served")
  func countReturnsToZero() {
    let factory = CountingFactory(maxConnections: 2)
    let clients = (0..<5).map { _ in StringTransport() }
    defer { for transport in clients { transport.peerClosed() } }
    for client in clients { client.connect(factory: factory) }
    #expect(factory.counters.refused == 3)
    for client in clients where !client.isClosed { client.peerClosed() }
    #expect(factory.counters.live == 0)

    let next = StringTransport()

    defer { next.peerClosed() }  // a protocol and its transport hold each other until closed
    next.connect(factory: factory)
    next.receive("again")
    #expect(next.writtenString == "again")
    #expect(factory.counters.live == 1)
  }

  @Test("a limit of 0 refuses everyone")
  func zeroLimit() {
    let factory = CountingFactory(maxConnections: 0)
    let client = StringTransport()
    defer { client.peerClosed() }  // a protocol and its transport hold each other until closed
    client.connect(factory: factory)
    #expect(client.writtenString == CountingEcho.refusal)
    #expect(factory.counters.live == 0)
  }

  @Test("a closure factory gives CountingEcho its limit; it counts with that factory's counters")
  func closureFactoryLimit() {
    let factory = Factory { _ in CountingEcho(maxConnections: 1) }
    let first = StringTransport()
    let second = StringTransport()
    defer {
      first.peerClosed()
      second.peerClosed()
    }
    first.connect(factory: factory)
    second.connect(factory: factory)
    #expect(first.writtenString.isEmpty)
    #expect(second.writtenString == CountingEcho.refusal)
    #expect(second.closeReason == .closedByUs)
    #expect(factory.counters.refused == 1)
    #expect(factory.counters.live == 1)
  }

  @Test("Factory(CountingEcho.self) has the tutorial's limit of 100")
  func typeFormDefaultLimit() {
    #expect(CountingEcho().maxConnections == 100)
    #expect(CountingFactory().maxConnections == 100)
  }
}
