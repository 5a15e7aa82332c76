import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

@Suite("Counting Echo over loopback")
struct ConnectionLimitTests {
  @Test("150 clients against a limit of 100: 100 served, 50 refused, then served again")
  func refusesPastTheLimit() throws {
    let reactor = try Reactor()
    let server = CountingFactory(maxConnections: 100)
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    var finished = 0
    clients.configure = { client in
      client.done = { _ in
        finished += 1
        if finished == 150 { reactor.stop() }
      }
    }
    for _ in 0..<150 { reactor.connectTCP("127.0.0.1", port, factory: clients) }
    // Once all 150 are accepted (50 of them already refused), the served ones say hello and leave.
    var checked = false
    let poll = LoopingCall(reactor) {
      // Wait until every client is connected on its side and the 50 refused ones are gone.
      guard !checked, server.counters.accepted == 150, server.counters.live == 100, clients.clients.count == 150,
        clients.clients.filter({ $0.lostReason != nil }).count == 50
      else { return }
      checked = true
      for client in clients.clients where client.lostReason == nil {
        client.message = Array("ping".utf8)
        client.expecting = 4
        client.transport.write(client.message)
      }
    }
    poll.start(interval: 0.01)
    run(reactor, timeout: 30)
    poll.stop()

    let refused = clients.clients.filter { $0.received == Array(CountingEcho.refusal.utf8) }
    let served = clients.clients.filter { $0.received == Array("ping".utf8) }
    #expect(refused.count == 50)
    #expect(served.count == 100)
    #expect(server.counters.refused == 50)
    #expect(server.counters.accepted == 150)

    // After they leave the count is back to 0 and a new client is served.
    let reactor2 = try Reactor()
    let port2 = try listen(reactor2, server)
    let again = ClientMaker()
    again.configure = { client in
      client.message = Array("again".utf8)
      client.expecting = 5
      client.done = { _ in reactor2.stop() }
    }
    #expect(server.counters.live == 0)
    reactor2.connectTCP("127.0.0.1", port2, factory: again)
    run(reactor2)
    #expect(again.clients.first?.received == Array("again".utf8))
    #expect(server.counters.live == 0)
  }

  @Test("a factory returning nil closes the socket at once and counts a refusal")
  func factoryRefusal() throws {
    final class Refuser: Factory {
      override func buildProtocol(_ peer: SocketAddress) -> Protocol? { nil }
    }
    let reactor = try Reactor()
    let server = Refuser(Echo.self)
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = [1]
      client.done = { _ in reactor.stop() }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor)
    let client = try #require(clients.clients.first)
    #expect(client.received.isEmpty)
    #expect(client.lostReason == .closedByPeer || client.lostReason == .reset)
    #expect(server.counters.refused == 1)
    #expect(server.counters.accepted == 0)
    #expect(server.counters.live == 0)
  }
}
