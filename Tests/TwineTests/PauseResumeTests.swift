import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// Pauses after each read for a moment, so bytes pile up in the kernel meanwhile.
final class Stutterer: Protocol {
  weak var reactor: Reactor?
  private(set) var pauses = 0
  override func dataReceived(_ data: RawSpan) {
    transport.write(data)
    transport.pauseProducing()
    pauses += 1
    reactor?.callLater(0.002) { [weak self] in self?.transport.resumeProducing() }
  }
}

@Suite("Pausing and resuming reads")
struct PauseResumeTests {
  @Test("a protocol that pauses after every read still receives every byte, in order")
  func pausedReadsLoseNothing() throws {
    let reactor = try Reactor()
    var stutterer: Stutterer?
    let server = Factory { [unowned reactor] _ in
      let made = Stutterer()
      made.reactor = reactor
      stutterer = made
      return made
    }
    let port = try listen(reactor, server)
    let message = pattern(2 << 20, seed: 3)
    let clients = ClientMaker()
    clients.configure = { client in
      client.message = message
      client.expecting = message.count
      client.done = { _ in reactor.stop() }
    }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    run(reactor, timeout: 60)
    #expect(clients.clients.first?.received == message)
    #expect(try #require(stutterer).pauses > 1)
  }

  @Test("a peer that sends then shuts its write side still gets the whole echo")
  func peerHalfCloseStillFlushed() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listen(reactor, server)
    let message = pattern(4 << 20, seed: 5)
    let clients = ClientMaker()
    clients.configure = { client in client.done = { _ in reactor.stop() } }
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    var sent = false
    var shut = false
    let poll = LoopingCall(reactor) {
      guard !shut, let client = clients.clients.first, let connection = client.transport as? TCPConnection else {
        return
      }
      if !sent {
        sent = true
        client.transport.write(message)
      } else if client.transport.pendingWriteCount == 0 {
        // Everything handed to the kernel: send FIN, keep reading the echo.
        shut = true
        shutdown(connection.fd, Int32(SHUT_WR))
      }
    }
    poll.start(interval: 0.01)
    run(reactor, timeout: 60)
    poll.stop()
    #expect(clients.clients.first?.received.count == message.count)
    #expect(clients.clients.first?.received == message)
    #expect(server.counters.live == 0)
  }
}
