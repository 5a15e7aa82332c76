import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// The TLS handshake is bounded in all, not per silence; failures keep their real reason.
@Suite("TLS handshake deadlines and connect failures")
struct TLSDeadlineTests {
  @Test("a client trickling its hello a byte at a time is dropped at the handshake timeout")
  func tricklingHandshakeDropped() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let options = TestCertificates.server(handshakeTimeout: 0.4)
    let port = try reactor.listenSSL(0, factory: server, tls: options, interface: "127.0.0.1").address.port
    let trickler = ClientMaker()
    trickler.configure = { client in client.done = { _ in reactor.stop() } }
    reactor.connectTCP("127.0.0.1", port, factory: trickler)
    // A TLS record header then a byte every 0.1 s: each byte restarts libevent's read timeout.
    let hello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00] + [UInt8](repeating: 0x01, count: 60)
    var sent = 0
    let drip = LoopingCall(reactor) {
      guard sent < hello.count, let client = trickler.clients.first, client.lostReason == nil else { return }
      client.transport.write([hello[sent]])
      sent += 1
    }
    drip.start(interval: 0.1)
    let start = reactor.now
    run(reactor, timeout: 10)
    drip.stop()
    #expect(trickler.clients.first?.lostReason != nil)
    #expect(reactor.now - start < 3, "the handshake lasted \(reactor.now - start) s")
    #expect(server.counters.accepted == 0)
  }

  @Test("a TLS connect that fails at once reports the socket error, not a reset")
  func immediateTLSConnectFailure() throws {
    let reactor = try Reactor()
    let clients = ClientMaker()
    clients.onFailure = { _ in reactor.stop() }
    try reactor.connectSSL("255.255.255.255", 443, factory: clients, tls: .client(verifyPeer: false))
    run(reactor, timeout: 10)
    #expect(clients.failed.count == 1)
    #expect(clients.failed.first != .reset)
    if case .error(let cause) = clients.failed.first {
      #expect(cause.code == ENETUNREACH || cause.code == EACCES)
    }
  }

  @Test("a rate limit set before startTLS moves to the TLS layer; the upgraded echo still works")
  func rateLimitThenStartTLS() throws {
    final class Upgrader: Protocol {
      override func dataReceived(_ data: RawSpan) {
        guard data.utf8String == "STARTTLS\n" else { return transport.write(data) }
        transport.setRateLimit(RateLimit(readBytesPerSecond: 1 << 20, writeBytesPerSecond: 1 << 20))
        transport.write("go\n")
        transport.startTLS(TestCertificates.server())
      }
    }
    final class UpgradingClient: Protocol {
      private(set) var received: [UInt8] = []
      private(set) var lost: CloseReason?
      override func connectionMade() { transport.write("STARTTLS\n") }
      override func dataReceived(_ data: RawSpan) {
        if data.utf8String == "go\n" {
          transport.startTLS(TestCertificates.trustingClient())
          transport.write("secret")
          return
        }
        received += data.bytes
        if received.count >= 6 { transport.loseConnection() }
      }
      override func connectionLost(_ reason: CloseReason) { lost = reason }
    }
    var client: UpgradingClient?
    let clients = ClientFactory { _ in
      let made = UpgradingClient()
      client = made
      return made
    }
    let reactor = try Reactor()
    let server = Factory(Upgrader.self)
    let port = try reactor.listenTCP(0, factory: server, interface: "127.0.0.1").address.port
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    let poll = LoopingCall(reactor) { if client?.lost != nil && server.counters.live == 0 { reactor.stop() } }
    poll.start(interval: 0.02)
    run(reactor, timeout: 20)
    #expect(client?.received == Array("secret".utf8))
    #expect(client?.lost == .closedByUs)
  }
}
