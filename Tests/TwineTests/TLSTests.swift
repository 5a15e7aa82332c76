import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// TLS over loopback: Twine's TLS port against Twine's TLS client, a raw plaintext
/// peer, and a peer that stalls. Certificates come from `TestCertificates`.
@Suite("TLS")
struct TLSTests {
  /// Serves `factory` over TLS on an ephemeral loopback port.
  func listenTLS(_ reactor: Reactor, _ factory: Factory, _ options: TLSOptions = TestCertificates.server()) throws
    -> Int
  {
    try reactor.listenSSL(0, factory: factory, tls: options, interface: "127.0.0.1").address.port
  }

  /// A server factory whose protocols echo and record how they ended.
  func echoingRecorders(stopAfter count: Int? = nil, _ reactor: Reactor) -> RecorderFactory {
    let server = RecorderFactory()
    var lost = 0
    server.configure = { recorder in
      recorder.echoes = true
      recorder.onLost = { _ in
        lost += 1
        if lost == count { reactor.stop() }
      }
    }
    return server
  }

  /// Connects a client that sends `message` and closes once it has it back.
  func echoClient(_ message: [UInt8], stop reactor: Reactor? = nil) -> RecorderClientFactory {
    let clients = RecorderClientFactory()
    clients.configure = { client in
      client.onMade = { $0.transport.write(message) }
      client.onData = { if $0.received.count >= message.count { $0.transport.loseConnection() } }
      client.onLost = { _ in reactor?.stop() }
    }
    clients.onFailure = { _ in reactor?.stop() }
    return clients
  }

  @Test("echo over TLS returns every byte to a Twine client that trusts the certificate; both ends close cleanly")
  func echoRoundTrip() throws {
    let reactor = try Reactor()
    let server = echoingRecorders(stopAfter: 1, reactor)
    let port = try listenTLS(reactor, server)
    let message = pattern(300_000, seed: 3)
    let clients = echoClient(message)
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor)
    let client = try #require(clients.built.first)
    #expect(firstDifference(client.received, message) == nil)
    #expect(client.lostReason == .closedByUs)
    #expect(clients.failed.isEmpty)
    // The client's loseConnection sent close_notify: the server saw a clean close.
    #expect(server.built.first?.lostReason == .closedByPeer)
    #expect(server.counters.accepted == 1)
    #expect(server.counters.live == 0)
    #expect(server.counters.bytesIn == message.count)
    #expect(server.counters.bytesOut == message.count)
    #expect(clients.counters.bytesIn == message.count)
    #expect(reactor.connections.isEmpty)
  }

  @Test("a client refuses a self-signed certificate it was not told to trust, and accepts it when told")
  func selfSignedRefusedUnlessTrusted() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listenTLS(reactor, server)
    // The system's CAs do not vouch for the test certificate.
    let untrusting = echoClient(Array("ping".utf8))
    try reactor.connectSSL("localhost", port, factory: untrusting, tls: .client())
    runUntil(reactor) { !untrusting.failed.isEmpty }
    let reason = try #require(untrusting.failed.first)
    #expect(reason.tlsText?.contains("certificate verify failed") == true, "\(reason)")
    #expect(reason.tlsText?.contains("self-signed certificate") == true, "\(reason)")
    #expect(untrusting.built.isEmpty)

    let trusting = echoClient(Array("ping".utf8))
    try reactor.connectSSL("localhost", port, factory: trusting, tls: TestCertificates.trustingClient())
    runUntil(reactor) { trusting.built.first?.lostReason != nil || !trusting.failed.isEmpty }
    #expect(trusting.failed.isEmpty)
    #expect(trusting.built.first?.received == Array("ping".utf8))

    let unverifying = echoClient(Array("pong".utf8))
    try reactor.connectSSL("127.0.0.1", port, factory: unverifying, tls: .client(verifyPeer: false))
    runUntil(reactor) { unverifying.built.first?.lostReason != nil || !unverifying.failed.isEmpty }
    #expect(unverifying.built.first?.received == Array("pong".utf8))
    // The refused handshake never reached the server's factory.
    #expect(server.counters.accepted == 2)
    #expect(server.counters.refused == 0)
  }

  @Test("a certificate for another name is rejected even when its CA is trusted")
  func wrongHostnameRejected() throws {
    let reactor = try Reactor()
    let wrong = TestCertificates.wrongName
    let server = Factory(Echo.self)
    let port = try listenTLS(reactor, server, .server(certificateFile: wrong.certificate, privateKeyFile: wrong.key))
    let clients = echoClient(Array("ping".utf8))
    try reactor.connectSSL("localhost", port, factory: clients, tls: .client(trustedCAFile: wrong.certificate))
    runUntil(reactor) { !clients.failed.isEmpty }
    let reason = try #require(clients.failed.first)
    #expect(reason.tlsText?.contains("hostname mismatch") == true, "\(reason)")
    #expect(server.counters.accepted == 0)

    // The same certificate passes when the client expects the name it carries.
    let named = echoClient(Array("ping".utf8))
    try reactor.connectSSL(
      "127.0.0.1", port, factory: named, tls: .client(trustedCAFile: wrong.certificate, serverName: "wrong.example"))
    runUntil(reactor) { named.built.first?.lostReason != nil || !named.failed.isEmpty }
    #expect(named.failed.isEmpty)
    #expect(named.built.first?.received == Array("ping".utf8))
  }

  @Test("a certificate for 127.0.0.1 passes the check when the client connects to that address")
  func ipAddressChecked() throws {
    let reactor = try Reactor()
    let port = try listenTLS(reactor, Factory(Echo.self))
    let clients = echoClient(Array("by address".utf8), stop: reactor)
    try reactor.connectSSL("127.0.0.1", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor)
    #expect(clients.failed.isEmpty)
    #expect(clients.built.first?.received == Array("by address".utf8))
  }

  @Test("plaintext sent to a TLS port ends only that connection; the port keeps serving TLS")
  func plaintextToTLSPort() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listenTLS(reactor, server)
    // A plain TCP client speaking HTTP to the TLS port: the server answers with an alert and closes.
    let plain = ClientMaker()
    plain.configure = { client in client.message = Array("GET / HTTP/1.0\r\n\r\n".utf8) }
    reactor.connectTCP("127.0.0.1", port, factory: plain)
    runUntil(reactor) { plain.clients.first?.lostReason != nil }
    let reason = try #require(plain.clients.first?.lostReason)
    #expect(reason == .closedByPeer || reason == .reset, "\(reason)")
    #expect(reactor.connections.isEmpty, "the server's side of the plaintext connection is gone")

    let clients = echoClient(Array("still serving".utf8))
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    runUntil(reactor) { clients.built.first?.lostReason != nil || !clients.failed.isEmpty }
    #expect(clients.built.first?.received == Array("still serving".utf8))
    #expect(server.counters.accepted == 1, "only the TLS client reached the factory")
    #expect(server.counters.refused == 0)
  }

  @Test("a client that stalls mid-handshake is dropped after the handshake timeout")
  func stalledHandshakeDropped() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listenTLS(reactor, server, TestCertificates.server(handshakeTimeout: 0.3))
    // Half a TLS record header, then nothing.
    let stalled = ClientMaker()
    stalled.configure = { client in
      client.message = [0x16, 0x03, 0x01]
      client.done = { _ in reactor.stop() }
    }
    let start = reactor.now
    reactor.connectTCP("127.0.0.1", port, factory: stalled)
    run(reactor)
    #expect(reactor.now - start >= 0.25)
    #expect(stalled.clients.first?.lostReason != nil)
    #expect(reactor.connections.isEmpty)
    #expect(server.counters.accepted == 0)
    #expect(server.counters.live == 0)
  }

  @Test("a server that asks for client certificates refuses a client without one and serves one with one")
  func clientCertificates() throws {
    let reactor = try Reactor()
    let server = Factory(Echo.self)
    let port = try listenTLS(reactor, server, TestCertificates.server(clientCA: TestCertificates.client.certificate))

    let anonymous = echoClient(Array("anonymous".utf8))
    try reactor.connectSSL("localhost", port, factory: anonymous, tls: TestCertificates.trustingClient())
    runUntil(reactor) { anonymous.built.first?.lostReason != nil || !anonymous.failed.isEmpty }
    // TLS 1.3: the client may finish its handshake before the server refuses it, so the
    // refusal arrives as a failed connect or as the end of a connection that got nothing.
    let refusal = anonymous.failed.first ?? anonymous.built.first?.lostReason
    #expect(refusal?.tlsText?.contains("certificate required") == true, "\(String(describing: refusal))")
    #expect(anonymous.built.first?.received.isEmpty ?? true)

    let identified = echoClient(Array("identified".utf8))
    let options = TLSOptions.client(
      trustedCAFile: TestCertificates.localhost.certificate, certificateFile: TestCertificates.client.certificate,
      privateKeyFile: TestCertificates.client.key)
    try reactor.connectSSL("localhost", port, factory: identified, tls: options)
    runUntil(reactor) { identified.built.first?.lostReason != nil || !identified.failed.isEmpty }
    #expect(identified.failed.isEmpty)
    #expect(identified.built.first?.received == Array("identified".utf8))
    #expect(server.counters.accepted == 1)
  }

  @Test("16 MiB written then loseConnection arrives whole, followed by a clean TLS close")
  func bulkThenLoseConnection() throws {
    let reactor = try Reactor()
    let server = RecorderFactory()
    server.configure = { recorder in
      recorder.onMade = { proto in
        ChunkedStream.write(16 << 20, to: proto.transport)
        proto.transport.loseConnection()
      }
    }
    let port = try listenTLS(reactor, server)
    let clients = RecorderClientFactory()
    clients.configure = { client in
      client.checker = StreamChecker()
      client.onLost = { _ in reactor.stop() }
    }
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor, timeout: 60)
    let client = try #require(clients.built.first)
    #expect(client.checker?.count == 16 << 20)
    #expect(client.checker?.firstMismatch == nil)
    // close_notify arrived after the last byte: a clean close, not a truncation.
    #expect(client.lostReason == .closedByPeer)
    #expect(server.built.first?.lostReason == .closedByUs)
    #expect(server.counters.bytesOut == 16 << 20)
  }

  @Test("bytes that arrive together with close_notify are delivered before connectionLost")
  func tailBeforeCloseNotify() throws {
    // The client reads nothing until the server has written 40 kB (it fits in the socket
    // buffers), sent close_notify and closed: the last record and the alert are read together.
    let reactor = try Reactor()
    let tail = pattern(40_000, seed: 12)
    let clients = RecorderClientFactory()
    clients.configure = { client in
      client.onMade = { $0.transport.pauseProducing() }
      client.onLost = { _ in reactor.stop() }
    }
    let server = RecorderFactory()
    server.configure = { recorder in
      recorder.onMade = { proto in
        proto.transport.write(tail)
        proto.transport.loseConnection()
      }
      recorder.onLost = { _ in reactor.callLater(0.1) { clients.built.first?.transport.resumeProducing() } }
    }
    let port = try listenTLS(reactor, server)
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor)
    #expect(server.built.first?.lostReason == .closedByUs)
    let client = try #require(clients.built.first)
    #expect(client.received.count == tail.count)
    #expect(firstDifference(client.received, tail) == nil)
    #expect(client.lostReason == .closedByPeer)
  }

  @Test("a peer that closes without close_notify ends the connection with tlsFailed, unless unclean closes are allowed")
  func uncleanClose() throws {
    for allowed in [false, true] {
      let reactor = try Reactor()
      let server = RecorderFactory()
      server.configure = { recorder in recorder.onLost = { _ in reactor.stop() } }
      var options = TestCertificates.server()
      options.allowsUncleanClose = allowed
      let port = try listenTLS(reactor, server, options)
      let clients = RecorderClientFactory()
      clients.configure = { client in
        client.onMade = { $0.transport.write("bye") }
        client.onData = { _ in }
      }
      // The client aborts (no close_notify) once the server has the bytes. Not on the same
      // stack: the server reads "bye" in the callback that ends its handshake, and a client
      // closing before it has read the session tickets sent then would reset, not end, the stream.
      server.configure = { recorder in
        recorder.onData = { _ in reactor.callLater(0.05) { clients.built.first?.transport.abortConnection() } }
        recorder.onLost = { _ in reactor.stop() }
      }
      try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
      run(reactor)
      let reason = try #require(server.built.first?.lostReason)
      if allowed {
        #expect(reason == .closedByPeer)
      } else {
        #expect(reason.tlsText?.contains("unexpected eof") == true, "\(reason)")
        #expect(!reason.isClean)
      }
      #expect(clients.built.first?.lostReason == .aborted)
    }
  }

  @Test("a refused TCP connect to a TLS client fails with connectionRefused")
  func refusedConnect() throws {
    let reactor = try Reactor()
    // A port with no listener: bind one, note its port, close it.
    let port = try listenTLS(reactor, Factory(Echo.self))
    for port in Array(reactor.ports.values) { port.stopListening() }
    let clients = echoClient([], stop: reactor)
    try reactor.connectSSL("127.0.0.1", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor)
    #expect(clients.failed == [.connectionRefused])
  }

  @Test("files that cannot be used throw TwineError.tls naming the file; server options cannot connect")
  func setupErrors() throws {
    let reactor = try Reactor()
    let missing = "/nonexistent/twine-test.crt"
    #expect {
      try reactor.listenSSL(
        0, factory: Factory(Echo.self), tls: .server(certificateFile: missing, privateKeyFile: missing),
        interface: "127.0.0.1")
    } throws: { error in
      "\(error)".contains(missing)
    }
    // A key that belongs to another certificate.
    let mismatched = TLSOptions.server(
      certificateFile: TestCertificates.localhost.certificate, privateKeyFile: TestCertificates.wrongName.key)
    #expect {
      try reactor.listenSSL(0, factory: Factory(Echo.self), tls: mismatched, interface: "127.0.0.1")
    } throws: { error in
      "\(error)".contains("mismatch")
    }
    #expect(throws: TwineError.self) {
      try reactor.connectSSL("127.0.0.1", 1, factory: ClientFactory(Echo.self), tls: TestCertificates.server())
    }
    #expect(reactor.ports.isEmpty)
  }

  @Test("reactor shutdown closes open TLS connections with reactorShutdown")
  func shutdownClosesTLSConnections() throws {
    let reactor = try Reactor()
    let server = RecorderFactory()
    let port = try listenTLS(reactor, server)
    let clients = RecorderClientFactory()
    clients.configure = { client in client.onMade = { _ in reactor.stop() } }
    try reactor.connectSSL("localhost", port, factory: clients, tls: TestCertificates.trustingClient())
    run(reactor)
    reactor.shutdown()
    #expect(clients.built.first?.lostReason == .reactorShutdown)
    #expect(reactor.connections.isEmpty)
    #expect(server.counters.live == 0)
  }
}
