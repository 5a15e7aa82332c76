import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// Writes `size` bytes on connect, then loseConnection.
final class BulkWriter: Protocol {
  var size = 16 << 20
  var onLost: (CloseReason) -> Void = { _ in }
  override func connectionMade() {
    transport.write(pattern(size, seed: 7))
    transport.loseConnection()
    transport.write([1, 2, 3])  // still accepted while disconnecting
  }
  override func connectionLost(_ reason: CloseReason) { onLost(reason) }
}

@Suite("Closing connections")
struct ClosePathTests {
  @Test("loseConnection after writing 16 MiB delivers every byte to a slow reader")
  func loseConnectionFlushes() throws {
    var lost: [CloseReason] = []
    let reactor = try Reactor()
    let server = Factory { _ in
      let writer = BulkWriter()
      writer.size = 16 << 20
      writer.onLost = { lost.append($0) }
      return writer
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    clients.configure = { client in client.done = { _ in reactor.stop() } }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    // The client stops reading for a while so the server's queue backs up.
    reactor.callLater(0.05) { clients.clients.first?.transport.pauseProducing() }
    reactor.callLater(0.5) { clients.clients.first?.transport.resumeProducing() }
    run(reactor, timeout: 30)
    let client = try #require(clients.clients.first)
    #expect(client.received.count == (16 << 20) + 3)
    #expect(client.received.prefix(16 << 20).elementsEqual(pattern(16 << 20, seed: 7)))
    #expect(client.lostReason == .closedByPeer)
    #expect(lost == [.closedByUs])
  }

  @Test("a peer reset mid-write reports .reset and the server keeps serving")
  func peerResetMidWrite() throws {
    final class Writer: Protocol {
      weak var reactor: Reactor?
      var onLost: (CloseReason) -> Void = { _ in }
      var loop: LoopingCall?
      override func connectionMade() {
        let chunk = [UInt8](repeating: 7, count: 64 << 10)
        loop = LoopingCall(reactor!) { [unowned self] in self.transport.write(chunk) }
        loop?.start(interval: 0.001)
      }
      override func connectionLost(_ reason: CloseReason) {
        loop?.stop()
        onLost(reason)
      }
    }
    let reactor = try Reactor()
    var lost: [CloseReason] = []
    let port = try listen(
      reactor,
      Factory { [unowned reactor] _ in
        let writer = Writer()
        writer.reactor = reactor
        writer.onLost = { lost.append($0) }
        return writer
      })
    let echoPort = try listen(reactor, Factory(Echo.self))
    let clients = ClientMaker()
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    reactor.callLater(0.2) {
      // Reset: SO_LINGER 0 then close with unread data.
      let fd = (clients.clients.first?.transport as? TCPConnection).map { $0.fd } ?? -1
      var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
      clients.clients.first?.transport.abortConnection()
    }
    let echoClients = ClientMaker()
    echoClients.configure = { client in
      client.message = [9, 9]
      client.expecting = 2
      client.done = { _ in reactor.stop() }
    }
    let watch = LoopingCall(reactor) {
      if !lost.isEmpty && echoClients.clients.isEmpty {
        reactor.connectTCP("127.0.0.1", echoPort, factory: echoClients)
      }
    }
    watch.start(interval: 0.01)
    run(reactor)
    watch.stop()
    #expect(lost == [.reset])
    #expect(echoClients.clients.first?.received == [9, 9])
  }

  @Test("close calls inside dataReceived are safe; writes after loseConnection in the same callback still go out")
  func closeInsideCallbacks() throws {
    final class Closer: Protocol {
      var onLost: (CloseReason) -> Void = { _ in }
      override func dataReceived(_ data: RawSpan) {
        transport.write(data)
        if data.byteCount > 0 && data.withUnsafeBytes({ $0[0] }) == UInt8(ascii: "a") {
          transport.abortConnection()
          transport.loseConnection()
          transport.write("dropped")
        } else {
          transport.loseConnection()
          transport.loseConnection()
          transport.write("!")  // the close waits for this callback to end, so this is sent
        }
      }
      override func connectionLost(_ reason: CloseReason) {
        onLost(reason)
        transport.write("after close")  // ignored, not a crash
        transport.pauseProducing()
        transport.resumeProducing()
      }
    }
    var lost: [CloseReason] = []
    let reactor = try Reactor()
    let server = Factory { _ in
      let closer = Closer()
      closer.onLost = { lost.append($0) }
      return closer
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    var done = 0
    clients.configure = { client in
      client.message = Array((done == 0 ? "abort" : "lose").utf8)
      client.done = { _ in
        done += 1
        if done == 2 { reactor.stop() }
      }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    reactor.callLater(0.1) { reactor.connectTCP("127.0.0.1", port, factory: clients) }
    run(reactor)
    #expect(lost.sorted { "\($0)" < "\($1)" } == [.aborted, .closedByUs])
    #expect(clients.clients.last?.received == Array("lose!".utf8))
    #expect(server.counters.live == 0)
    #expect(reactor.connections.isEmpty)
  }

  @Test("a close inside dataReceived waits for it: connectionLost comes after dataReceived returns, once")
  func closeInsideCallbackIsDeferred() throws {
    final class AbortInside: Protocol {
      var inside = false
      var onLost: (_ reason: CloseReason, _ duringDataReceived: Bool) -> Void = { _, _ in }
      override func dataReceived(_ data: RawSpan) {
        inside = true
        transport.abortConnection(reason: .protocolError("no"))
        transport.loseConnection()  // a second close inside the same callback changes nothing
        inside = false
      }
      override func connectionLost(_ reason: CloseReason) { onLost(reason, inside) }
    }
    var lost: [(CloseReason, Bool)] = []
    let reactor = try Reactor()
    let server = Factory { _ in
      let proto = AbortInside()
      proto.onLost = {
        lost.append(($0, $1))
        reactor.stop()
      }
      return proto
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    clients.configure = { $0.message = Array("hi".utf8) }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor)
    #expect(lost.count == 1)
    #expect(lost.first?.0 == .protocolError("no"))
    #expect(lost.first?.1 == false, "connectionLost ran inside dataReceived")
    #expect(server.counters.live == 0)
  }

  @Test("stopping the reactor closes open connections with .reactorShutdown")
  func shutdownClosesConnections() throws {
    final class Holder: Protocol {
      var onLost: (CloseReason) -> Void = { _ in }
      override func connectionLost(_ reason: CloseReason) { onLost(reason) }
    }
    var lost: [CloseReason] = []
    let reactor = try Reactor()
    let server = Factory { _ in
      let holder = Holder()
      holder.onLost = { lost.append($0) }
      return holder
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    reactor.callLater(0.2) { reactor.stop() }
    run(reactor)
    #expect(lost == [.reactorShutdown])
    #expect(clients.clients.first?.lostReason == .reactorShutdown)
    #expect(reactor.connections.isEmpty && reactor.ports.isEmpty)
  }
}
