import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

// Serialized: closedPort() hands out a port it just freed; a test beside it could be given that port.
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

  @Test("a client's connection exposes its host and peer addresses and socket options, still after close")
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
      // Closed: options are no-ops, and the address is the one the connection had.
      #expect(throws: Never.self) { try transport.setTCPNoDelay(true) }
      #expect(transport.host == host)
    }
    run(reactor)
    #expect(peer?.port == port)
    #expect(host?.host == "127.0.0.1" && host?.port != port)
  }
}

@Suite("Client connect timeout")
struct ConnectTimeoutTests {
  @Test("a connect that gets no answer within the timeout fails with .timedOut")
  func connectTimesOut() throws {
    // A loopback listener that never accepts, with its accept queue full: the kernel then
    // drops further SYNs, so a new connect waits, as it would for a silent host.
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #expect(listener >= 0)
    defer { Glibc.close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Bool in
        bind(listener, sa, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, sa, &length) == 0
      }
    }
    try #require(bound)
    let port = Int(UInt16(bigEndian: address.sin_port))
    let reactor = try Reactor()
    // Fill the accept queue (backlog 0 holds one) with connections nobody accepts.
    let fillers = ClientMaker()
    for _ in 0..<3 { reactor.connectTCP("127.0.0.1", port, factory: fillers, timeout: 30) }
    let clients = ClientMaker()
    clients.onFailure = { _ in reactor.stop() }
    reactor.callLater(0.3) {
      reactor.connectTCP("127.0.0.1", port, factory: clients, timeout: 0.5)
    }
    let start = reactor.now
    run(reactor, timeout: 20)
    #expect(clients.failed == [.timedOut])
    #expect(clients.clients.isEmpty)
    #expect(reactor.now - start < 10)
  }
}
