import Testing
import TwineTesting

/// The doc comment's example of ``Factory/init(counters:_:)``: config in `init`, plus `required init()`.
final class Greeter: Protocol {
  let greeting: String
  init(greeting: String) {
    self.greeting = greeting
    super.init()
  }
  required convenience init() { self.init(greeting: "hello") }
  override func connectionMade() { transport.write(greeting + "\r\n") }
}

/// A protocol configured through `var`s set in the factory's closure (no init of its own).
final class Tagger: Protocol {
  var tag = "?"
  var seen: (String) -> Void = { _ in }
  override func dataReceived(_ data: RawSpan) {
    seen(data.utf8String)
    transport.write("\(tag):\(data.utf8String)")
  }
}

@Suite("Factories made from a closure, on the in-memory transport")
struct ClosureFactoryTests {
  @Test("the closure gets the peer and configures the protocol; Factory sets the factory back-pointer")
  func configuresAndSetsFactory() {
    var peers: [SocketAddress] = []
    let factory = Factory { peer -> Greeter? in
      peers.append(peer)
      return Greeter(greeting: "hello, \(peer)")
    }
    #expect(factory.protocolType == Greeter.self)
    let transport = StringTransport(peer: SocketAddress(ipv4: (10, 0, 0, 7), port: 4242))
    defer { transport.peerClosed() }  // a protocol and its transport hold each other until closed
    let proto = transport.connect(factory: factory)
    #expect(peers == [transport.peer])
    #expect(transport.writtenString == "hello, \(transport.peer)\r\n")
    #expect(proto?.factory === factory)
    #expect(factory.counters.accepted == 1)
    #expect(factory.counters.live == 1)
  }

  @Test("the doc comment's example refuses port 0 and greets everyone else")
  func docExample() {
    let factory = Factory { peer in
      peer.port == 0 ? nil : Greeter(greeting: "hello, \(peer)")
    }
    #expect(factory.protocolType == Greeter.self)
    let refused = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 1), port: 0))
    #expect(refused.connect(factory: factory) == nil)
    let served = StringTransport()
    defer { served.peerClosed() }
    served.connect(factory: factory)
    #expect(served.writtenString == "hello, \(served.peer)\r\n")
    #expect(factory.counters.refused == 1)
    #expect(factory.counters.accepted == 1)
  }

  @Test("state the closure captures is shared by the protocols and owned by the test")
  func capturedStatePerTest() {
    final class Results { var lines: [String] = [] }
    let results = Results()
    var next = 0
    let factory = Factory { _ in
      let proto = Tagger()
      next += 1
      proto.tag = "t\(next)"
      proto.seen = { results.lines.append($0) }
      return proto
    }
    let first = StringTransport()
    let second = StringTransport()
    defer {
      first.peerClosed()
      second.peerClosed()
    }
    first.connect(factory: factory)
    second.connect(factory: factory)
    first.receive("a")
    second.receive("b")
    #expect(first.writtenString == "t1:a")
    #expect(second.writtenString == "t2:b")
    #expect(results.lines == ["a", "b"])
  }

  @Test("returning nil refuses: nothing is connected, the refusal is counted, nothing is live")
  func nilRefuses() {
    var asked = 0
    let factory = Factory { _ -> Greeter? in
      asked += 1
      return nil
    }
    let transport = StringTransport()
    #expect(transport.connect(factory: factory) == nil)
    #expect(asked == 1)
    #expect(transport.written.isEmpty)
    #expect(factory.counters.refused == 1)
    #expect(factory.counters.accepted == 0)
    #expect(factory.counters.live == 0)
  }

  @Test("counters can be shared with another factory")
  func sharedCounters() {
    let first = Factory { _ in Greeter() }
    let second = Factory(counters: first.counters) { _ in Greeter(greeting: "hi") }
    let transports = [StringTransport(), StringTransport()]
    defer { for transport in transports { transport.peerClosed() } }
    transports[0].connect(factory: first)
    transports[1].connect(factory: second)
    #expect(transports[0].writtenString == "hello\r\n")
    #expect(transports[1].writtenString == "hi\r\n")
    #expect(first.counters === second.counters)
    #expect(first.counters.accepted == 2)
  }

  @Test("Factory(Type.self) still builds through required init() and sets the factory")
  func typeFormUnchanged() {
    let factory = Factory(Greeter.self)
    #expect(factory.protocolType == Greeter.self)
    let transport = StringTransport()
    defer { transport.peerClosed() }
    let proto = transport.connect(factory: factory)
    #expect(transport.writtenString == "hello\r\n")
    #expect(proto?.factory === factory)
  }

  @Test("ClientFactory and ReconnectingClientFactory take the closure form too")
  func clientFactories() {
    let client = ClientFactory { _ in Greeter(greeting: "client") }
    let reconnecting = ReconnectingClientFactory { _ in Greeter(greeting: "again") }
    let transports = [StringTransport(), StringTransport()]
    defer { for transport in transports { transport.peerClosed() } }
    let first = transports[0].connect(factory: client)
    let second = transports[1].connect(factory: reconnecting)
    #expect(transports[0].writtenString == "client\r\n")
    #expect(transports[1].writtenString == "again\r\n")
    #expect(first?.factory === client)
    #expect(second?.factory === reconnecting)
  }
}
