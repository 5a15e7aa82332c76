import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

@Suite("Echo over loopback")
struct EchoRoundTripTests {
  @Test("echoes 1 byte, 64 KiB and 8 MiB intact", arguments: [1, 64 << 10, 8 << 20])
  func roundTrip(size: Int) throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    let message = pattern(size, seed: UInt8(size & 0xff))
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in reactor.stop() }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor)
    let client = try #require(clients.clients.first)
    #expect(client.received.count == size)
    #expect(client.received == message)
    #expect(client.lostReason == .closedByUs)
    #expect(server.counters.bytesIn == size)
    #expect(server.counters.bytesOut == size)
  }

  @Test("protocol events arrive in order, each once, with the peer's address")
  func eventOrder() throws {
    final class Recorder: Protocol {
      private(set) var log: [String] = []
      override func connectionMade() { log.append("made \(transport.peer.host)") }
      override func dataReceived(_ data: RawSpan) { log.append("data") }
      override func connectionLost(_ reason: CloseReason) { log.append("lost \(reason)") }
    }
    var recorders: [Recorder] = []
    let reactor = try Reactor()
    let server = Factory { _ in
      let recorder = Recorder()
      recorders.append(recorder)
      return recorder
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = [1, 2, 3]
      client.done = { _ in reactor.callLater(0.05) { reactor.stop() } }
    }
    reactor.connectTCP("localhost", port, factory: clients)
    reactor.callLater(0.2) { clients.clients.first?.transport.loseConnection() }
    run(reactor)
    #expect(recorders.count == 1)
    let log = recorders.flatMap(\.log)
    #expect(log.first == "made 127.0.0.1")
    #expect(log.dropFirst().allSatisfy { $0 == "data" || $0.hasPrefix("lost") })
    #expect(log.last == "lost connection closed by peer")
    #expect(log.filter { $0.hasPrefix("lost") }.count == 1)
  }
}
