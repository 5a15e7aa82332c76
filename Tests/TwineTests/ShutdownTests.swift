import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// What a reactor does once it has shut down, and shutting down from inside it.
@Suite("Reactor shutdown")
struct ShutdownTests {
  @Test("after shutdown, callLater is inert, listenTCP throws and connectTCP fails with .reactorShutdown")
  func creatorsRefuseAfterShutdown() throws {
    let reactor = try Reactor()
    reactor.shutdown()
    var ran = false
    let call = reactor.callLater(0) { ran = true }
    #expect(!call.isActive)
    #expect(reactor.delayedCalls.isEmpty)
    #expect(throws: TwineError.self) { try reactor.listenTCP(0, factory: Factory(Echo.self)) }
    #expect(reactor.ports.isEmpty)
    let clients = ClientMaker()
    reactor.connectTCP("127.0.0.1", 9, factory: clients)
    #expect(clients.failed == [.reactorShutdown])
    #expect(clients.numPorts == 0)
    reactor.run()  // returns at once
    #expect(!ran)
  }

  @Test("a reconnect scheduled from connectionLost during shutdown is refused, not left on a freed base")
  func reconnectDuringShutdownIsRefused() throws {
    final class Retrying: ClientFactory {
      var reactor: Reactor?
      var failures: [CloseReason] = []
      init() { super.init(Client.self) }
      override func clientConnectionLost(_ connector: any Connector, reason: CloseReason) {
        reactor?.callLater(0.1) { connector.connect() }
        reactor?.connectTCP("127.0.0.1", 9, factory: self)
      }
      override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
        failures.append(reason)
      }
    }
    let factory = Retrying()
    do {
      let reactor = try Reactor()
      factory.reactor = reactor
      let port = try listen(reactor, Factory(Echo.self))
      reactor.connectTCP("127.0.0.1", port, factory: factory)
      reactor.callLater(0.2) { reactor.stop() }
      run(reactor)
      #expect(reactor.delayedCalls.isEmpty)
      factory.reactor = nil
    }  // the reactor is freed here: nothing may touch its base afterwards (ASan checks)
    #expect(factory.failures == [.reactorShutdown])
  }

  @Test("shutdown() from inside a callback closes everything and makes run() return")
  func shutdownFromCallback() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    var reasons: [CloseReason] = []
    clients.configure = { client in
      client.done = { reasons.append($0.lostReason!) }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    reactor.callLater(0.2) { reactor.shutdown() }
    run(reactor, timeout: 10)
    #expect(reasons == [.reactorShutdown])
    #expect(server.counters.live == 0)
    #expect(reactor.connections.isEmpty && reactor.ports.isEmpty)
  }

  @Test("stopConnecting from startedConnecting ends the attempt before any socket is made")
  func stopFromStartedConnecting() throws {
    final class Hesitant: ClientFactory {
      var built = 0
      init() { super.init(Client.self) }
      override func startedConnecting(_ connector: any Connector) { connector.stopConnecting() }
      override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
        built += 1
        return super.buildProtocol(peer)
      }
    }
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    let factory = Hesitant()
    reactor.connectTCP("127.0.0.1", port, factory: factory)
    #expect(reactor.connections.isEmpty)
    reactor.callLater(0.2) { reactor.stop() }
    run(reactor)
    #expect(factory.built == 0 && factory.numPorts == 0)
    #expect(server.counters.accepted == 0)
  }

  @Test("a connect that fails at once is reported from the loop, after connectTCP returned")
  func immediateFailureIsReportedLater() throws {
    let reactor = try Reactor()
    let clients = ClientMaker()
    clients.onFailure = { _ in reactor.stop() }
    reactor.connectTCP("255.255.255.255", 80, factory: clients)  // ENETUNREACH from connect() itself
    #expect(clients.failed.isEmpty)
    run(reactor, timeout: 10)
    #expect(clients.failed.count == 1)
    #expect(clients.failed.first != .reactorShutdown)
  }

  @Test("a host lookup in flight at shutdown completes with .reactorShutdown and leaves nothing behind")
  func lookupInFlightAtShutdown() throws {
    // A nameserver on loopback that never answers: the lookup stays in flight.
    let silent = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { Glibc.close(silent) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
        bind(silent, sa, length) == 0 ? getsockname(silent, sa, &length) : -1
      }
    }
    let port = Int(UInt16(bigEndian: address.sin_port))
    let clients = ClientMaker()
    do {
      let reactor = try Reactor()
      try reactor.useNameserver("127.0.0.1:\(port)")
      reactor.connectTCP("twine-test.invalid", 80, factory: clients)
      reactor.callLater(0.3) { reactor.stop() }
      run(reactor)
    }
    #expect(clients.failed == [.reactorShutdown])
    #expect(clients.numPorts == 0)
  }
}
