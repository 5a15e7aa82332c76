import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

@Suite("Closure factories over loopback")
struct ClosureFactoryLoopbackTests {
  /// An echo that prefixes every reply with its tag, set by the factory's closure.
  final class TaggedEcho: Protocol {
    var tag: [UInt8] = []
    override func dataReceived(_ data: RawSpan) { transport.write(tag + data.bytes) }
  }

  @Test("the closure gets the client's address, configures the protocol, and the factory is set")
  func configuresOverLoopback() throws {
    final class Seen {
      var peers: [SocketAddress] = []
      var protocols: [Protocol] = []
    }
    let seen = Seen()
    let reactor = try Reactor()
    let server = Factory { peer in
      seen.peers.append(peer)
      let echo = TaggedEcho()
      echo.tag = Array("[\(seen.peers.count)] ".utf8)
      seen.protocols.append(echo)
      return echo
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = Array("ping".utf8)
      client.expecting = 8
      client.done = { _ in reactor.stop() }
    }
    let connector = reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor)
    #expect(clients.clients.first?.received == Array("[1] ping".utf8))
    #expect(seen.peers.count == 1)
    #expect(seen.peers.first?.host == "127.0.0.1")
    #expect(seen.peers.first?.port ?? 0 > 0)
    #expect(seen.protocols.first?.transport.peer == seen.peers.first)
    #expect(seen.protocols.first?.factory === server)
    #expect(server.counters.accepted == 1)
    _ = connector
  }

  @Test("a closure returning nil closes the socket at once and counts a refusal")
  func nilRefusesOverLoopback() throws {
    let reactor = try Reactor()
    var asked = 0
    let server = Factory { _ -> TaggedEcho? in
      asked += 1
      return nil
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = [1]
      client.done = { _ in reactor.stop() }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor)
    let client = try #require(clients.clients.first)
    #expect(asked == 1)
    #expect(client.received.isEmpty)
    #expect(client.lostReason == .closedByPeer || client.lostReason == .reset)
    #expect(server.counters.refused == 1)
    #expect(server.counters.accepted == 0)
    #expect(server.counters.live == 0)
  }

  @Test("a closure ClientFactory configures the client side; CountingEcho gets its limit from a closure")
  func clientSideAndCountingEcho() throws {
    let reactor = try Reactor()
    let server = Factory { _ in CountingEcho(maxConnections: 0) }
    let port = try listen(reactor, server)
    var received: [UInt8] = []
    var lost: CloseReason?
    let clientFactory = ClientFactory { _ in
      let client = Client()
      client.done = { client in
        received = client.received
        lost = client.lostReason
        reactor.stop()
      }
      return client
    }
    reactor.connectTCP("127.0.0.1", port, factory: clientFactory)
    run(reactor)
    #expect(received == Array(CountingEcho.refusal.utf8))
    #expect(lost == .closedByPeer)
    #expect(server.counters.refused == 1)
    #expect(server.counters.live == 0)
  }
}
