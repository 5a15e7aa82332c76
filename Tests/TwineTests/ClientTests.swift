import Glibc
import Testing
import TutorialServers

@testable import Twine

@Suite("Client connections", .serialized)
struct ClientTests {
  /// A loopback port with nothing listening (bound, then closed).
  func closedPort() throws -> Int {
    let reactor = try Reactor()
    let port = try reactor.listenTCP(0, factory: Factory(Echo.self), interface: "127.0.0.1")
    let number = port.address.port
    port.stopListening()
    return number
  }

  @Test("connecting to a closed port reports clientConnectionFailed(.connectionRefused)")
  func refused() throws {
    let port = try closedPort()
    let reactor = try Reactor()
    let clients = ClientMaker()
    clients.onFailure = { _ in reactor.stop() }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor)
    #expect(clients.failed == [.connectionRefused])
    #expect(clients.clients.isEmpty)
    #expect(reactor.connections.isEmpty)
    #expect(clients.numPorts == 0)
  }

  @Test("stopConnecting cancels an attempt without a failure report")
  func stopConnecting() throws {
    let reactor = try Reactor()
    let port = try listen(reactor, Factory(Echo.self))
    let clients = ClientMaker()
    let connector = reactor.connectTCP("127.0.0.1", port, factory: clients)
    connector.stopConnecting()
    reactor.callLater(0.1) { reactor.stop() }
    run(reactor)
    #expect(clients.failed.isEmpty && clients.clients.isEmpty)
  }

  @Test("a reconnecting client keeps trying until the server appears, then connects")
  func reconnectsUntilServerAppears() throws {
    final class Greeter: Protocol {
      override func connectionMade() { transport.write("hi") }
    }
    final class Reconnecting: ReconnectingClientFactory {
      var attempts = 0
      var connected: () -> Void = {}
      override func startedConnecting(_ connector: any Connector) { attempts += 1 }
      override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
        resetDelay()
        connected()
        return super.buildProtocol(peer)
      }
    }
    let port = try closedPort()
    let reactor = try Reactor()
    let factory = Reconnecting(Greeter.self)
    factory.initialDelay = 0.01
    factory.factor = 1.5
    factory.maxDelay = 0.05
    factory.connected = { [unowned factory] in
      factory.stopTrying()
      reactor.callLater(0) { reactor.stop() }
    }
    reactor.connectTCP("127.0.0.1", port, factory: factory)
    reactor.callLater(0.2) {
      _ = try? reactor.listenTCP(port, factory: Factory(Echo.self), interface: "127.0.0.1")
    }
    run(reactor)
    #expect(factory.attempts >= 2)
    #expect(factory.retries == 0, "resetDelay after connecting")
  }

  @Test("a client's connection exposes its host and peer addresses and socket options")
  func addressesAndOptions() throws {
    let reactor = try Reactor()
    let port = try listen(reactor, Factory(Echo.self))
    let clients = ClientMaker()
    var peer: SocketAddress?
    var host: SocketAddress?
    clients.configure = { client in client.done = { _ in reactor.stop() } }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    reactor.callLater(0.05) {
      guard let transport = clients.clients.first?.transport else { return }
      peer = transport.peer
      host = transport.host
      #expect(throws: Never.self) { try transport.setTCPNoDelay(true) }
      #expect(throws: Never.self) { try transport.setKeepAlive(true) }
      transport.loseConnection()
      #expect(throws: SocketError.self) { try transport.setTCPNoDelay(true) }
    }
    run(reactor)
    #expect(peer?.port == port)
    #expect(host?.host == "127.0.0.1" && host?.port != port)
  }
}
