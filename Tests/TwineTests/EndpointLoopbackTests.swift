import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// What the servers behind endpoints saw: the peer `buildProtocol` was given and the
/// `transport.peer` at `connectionMade`, per connection.
final class PeerLog {
  var built: [SocketAddress] = []
  var made: [SocketAddress] = []
  var lost: [CloseReason] = []

  /// An echo factory that records into this log (the closure holds the log, not the reverse).
  func factory() -> Factory {
    Factory { [self] peer -> PeerEcho? in
      built.append(peer)
      return PeerEcho(log: self)
    }
  }
}

/// The tutorial's Echo that also records its transport's peer.
final class PeerEcho: Protocol {
  private weak var log: PeerLog?
  init(log: PeerLog) {
    self.log = log
    super.init()
  }
  required init() {}
  override func connectionMade() { log?.made.append(transport.peer) }
  override func dataReceived(_ data: RawSpan) { transport.write(data) }
  override func connectionLost(_ reason: CloseReason) { log?.lost.append(reason) }
}

/// A client that writes its message a few bytes at a time, one piece per loop pass
/// (`gap` seconds apart), so a header arrives over many reads.
final class TrickleClient: Protocol {
  var pieces: [[UInt8]] = []
  var gap = 0.003
  var received: [UInt8] = []
  var lostReason: CloseReason?
  override func connectionMade() { next() }
  private func next() {
    guard !pieces.isEmpty else { return }
    transport.write(pieces.removeFirst())
    transport.scheduler.callLater(gap) { [weak self] in self?.next() }
  }
  override func dataReceived(_ data: RawSpan) { received += data.bytes }
  override func connectionLost(_ reason: CloseReason) { lostReason = reason }
}

@Suite("Endpoints on loopback")
struct EndpointLoopbackTests {
  /// Connects a `Client` through `endpoint`, sends `message` and collects `expecting` bytes.
  static func exchange(
    _ reactor: Reactor, _ endpoint: String, _ message: [UInt8], expecting: Int
  ) throws -> Client {
    let maker = ClientMaker()
    maker.configure = { client in
      client.message = message
      client.expecting = expecting
    }
    try reactor.connect(ClientEndpoint(endpoint), factory: maker)
    runUntil(reactor) { maker.clients.first?.lostReason != nil || !maker.failed.isEmpty }
    #expect(maker.failed.isEmpty, "\(endpoint): \(maker.failed)")
    return try #require(maker.clients.first)
  }

  @Test("tcp, tcp6, unix and ssl endpoints each serve the tutorial's Echo, reached through client endpoints")
  func streamKinds() throws {
    let reactor = try Reactor()
    let folder = try SocketFolder()
    let path = folder.file("echo:1.sock")
    let factory = Factory(Echo.self)
    let pair = TestCertificates.localhost
    let tcp = try reactor.listen("tcp:0:interface=127.0.0.1", factory: factory)
    let unix = try reactor.listen("unix:\(path.replacingOccurrences(of: ":", with: "\\:")):mode=600", factory: factory)
    let ssl = try reactor.listen(
      "ssl:0:privateKey=\(pair.key):certKey=\(pair.certificate):interface=127.0.0.1", factory: factory)
    #expect(unix.address == SocketAddress(.unix(path: path), port: 0))
    #expect(fileStatus(path).map { $0.st_mode & 0o777 } == 0o600)
    var cases = [
      ("tcp:127.0.0.1:\(tcp.address.port)", 1000),
      ("unix:\(path.replacingOccurrences(of: ":", with: "\\:"))", 2000),
      ("ssl:localhost:\(ssl.address.port):caCertsFile=\(pair.certificate)", 3000),
    ]
    if let tcp6 = try? reactor.listen("tcp6:0:interface=\\:\\:1", factory: factory) {
      cases.append(("tcp:host=\\:\\:1:port=\(tcp6.address.port)", 4000))
    }
    for (endpoint, size) in cases {
      let message = pattern(size, seed: UInt8(size / 1000))
      let client = try Self.exchange(reactor, endpoint, message, expecting: size)
      #expect(client.received == message, "\(endpoint)")
    }
    #expect(factory.counters.accepted == cases.count)
    reactor.shutdown()
  }

  @Test("a plaintext peer on an ssl endpoint counts one failed handshake, on the port and on the factory")
  func failedHandshakeCounted() throws {
    let reactor = try Reactor()
    let pair = TestCertificates.localhost
    let factory = Factory(Echo.self)
    let port = try reactor.listen(
      "ssl:0:privateKey=\(pair.key):certKey=\(pair.certificate):interface=127.0.0.1", factory: factory)
    let client = try Self.exchange(
      reactor, "tcp:127.0.0.1:\(port.address.port)", Array("not TLS at all\r\n\r\n".utf8), expecting: 1)
    #expect(client.lostReason != nil)
    runUntil(reactor) { port.failedHandshakes == 1 }
    #expect(factory.counters.tlsHandshakeFailures == 1)
    #expect(factory.counters.accepted == 0)
    #expect(port.stats.accepted == 1)
    reactor.shutdown()
  }

  @Test("a udp endpoint serves the UDP echo; a stream endpoint refuses a datagram protocol and vice versa")
  func udpKind() throws {
    let reactor = try Reactor()
    let port = try reactor.listen(ServerEndpoint("udp:0:interface=127.0.0.1"), protocol: UDPEcho())
    let client = DatagramRecorder()
    client.onDatagram = { _, _, _ in reactor.stop() }
    try udpPort(reactor, client).write(Array("ping".utf8), to: port.host)
    run(reactor)
    #expect(client.received.first?.bytes == Array("ping".utf8))
    #expect(client.received.first?.from == port.host)
    #expect(throws: TwineError.self) { try reactor.listen(ServerEndpoint("udp:0"), factory: Factory(Echo.self)) }
    #expect(throws: TwineError.self) { try reactor.listen(ServerEndpoint("tcp:0"), protocol: UDPEcho()) }
    reactor.shutdown()
  }

  @Test("systemd: with no LISTEN_PID, or one naming another process, the endpoint says so")
  func systemdWithoutSockets() throws {
    let reactor = try Reactor()
    unsetenv("LISTEN_PID")
    #expect {
      try reactor.listen("systemd:domain=INET:index=0", factory: Factory(Echo.self))
    } throws: { error in
      "\(error)".contains("LISTEN_PID is not set")
    }
    #expect(SystemdSockets.passed().isEmpty)
    reactor.shutdown()
  }

  // MARK: PROXY protocol from a test client

  static func v2(command: UInt8 = 0x21, family: UInt8, body: [UInt8]) -> [UInt8] {
    ProxyHeaderParser.signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
  }

  @Test("haproxy: v1 TCP4, v2 TCP6, v2 UNIX and v2 LOCAL: peer is the client's real address, data follows")
  func proxyKinds() throws {
    let reactor = try Reactor()
    let log = PeerLog()
    let port = try reactor.listen("haproxy:tcp:0:interface=127.0.0.1", factory: log.factory())
    var six = [UInt8](repeating: 0, count: 36)
    six[0] = 0x20
    six[1] = 0x01
    six[2] = 0x0d
    six[3] = 0xb8
    six[15] = 7
    six[31] = 1
    six[32] = 0x9c
    six[33] = 0x41  // 40001
    six[35] = 80
    var unix = [UInt8](repeating: 0, count: 216)
    unix.replaceSubrange(0..<17, with: Array("/run/client.sock\0".utf8))
    let cases: [([UInt8], String?)] = [
      (Array("PROXY TCP4 203.0.113.7 192.0.2.1 40000 8025\r\n".utf8), "203.0.113.7:40000"),
      (Self.v2(family: 0x21, body: six), "[2001:db8::7]:40001"),
      (Self.v2(family: 0x31, body: unix), "/run/client.sock"),
      (Self.v2(command: 0x20, family: 0x11, body: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]), nil),
    ]
    for (index, (header, expected)) in cases.enumerated() {
      let payload = pattern(100 + index, seed: UInt8(index))
      let client = try Self.exchange(
        reactor, "tcp:127.0.0.1:\(port.address.port)", header + payload, expecting: payload.count)
      #expect(client.received == payload)
      let seen = try #require(log.made.last)
      if let expected {
        #expect(seen.description == expected)
        #expect(log.built.last?.description == expected)
      } else {
        // LOCAL keeps the socket's peer: loopback, an ephemeral port.
        #expect(seen.host == "127.0.0.1" && seen.port != 0)
      }
    }
    #expect(log.made.count == cases.count)
    reactor.shutdown()
  }

  @Test("haproxy: a header split over many reads works; bytes after it in the same read are delivered")
  func proxySplit() throws {
    let reactor = try Reactor()
    let log = PeerLog()
    let port = try reactor.listen("haproxy:tcp:0:interface=127.0.0.1", factory: log.factory())
    let header = Array("PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n".utf8)
    let stream = header + Array("hello, world".utf8)
    let client = TrickleClient()
    client.pieces = stride(from: 0, to: stream.count, by: 3).map { Array(stream[$0..<min($0 + 3, stream.count)]) }
    let connector = reactor.connectTCP(
      "127.0.0.1", port.address.port, factory: ClientFactory { _ -> TrickleClient? in client })
    runUntil(reactor) { client.received.count >= 12 }
    #expect(client.received == Array("hello, world".utf8))
    #expect(log.made == [SocketAddress(.ipv6(high: 0x2001_0db8_0000_0000, low: 1, scopeID: 0), port: 1234)])
    connector.disconnect()
    reactor.shutdown()
  }

  @Test("haproxy: a missing, malformed or oversized header, or none in time, closes only that connection")
  func proxyRefusals() throws {
    let reactor = try Reactor()
    let log = PeerLog()
    let factory = log.factory()
    let port = try reactor.listen("haproxy:tcp:0:interface=127.0.0.1", factory: factory)
    let wrapper = try #require(port.factory as? ProxyProtocolFactory)
    wrapper.headerTimeout = 0.3
    let address = "tcp:127.0.0.1:\(port.address.port)"
    // A good connection stays open across the bad ones.
    let good = TrickleClient()
    good.pieces = [Array("PROXY TCP4 198.51.100.1 192.0.2.1 5555 80\r\nfirst".utf8)]
    reactor.connectTCP("127.0.0.1", port.address.port, factory: ClientFactory { _ -> TrickleClient? in good })
    runUntil(reactor) { good.received.count == 5 }
    let bad: [[UInt8]] = [
      Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),  // missing
      Array("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhello".utf8),  // malformed
      Array(("PROXY UNKNOWN " + String(repeating: "9", count: 200)).utf8),  // v1 too long
      Self.v2(family: 0x11, body: [UInt8](repeating: 0, count: 5000)),  // v2 too long
      Array("PROXY TCP4 1.2".utf8),  // never finished: the deadline
    ]
    for bytes in bad {
      let client = try Self.exchange(reactor, address, bytes, expecting: 1)
      #expect(client.received.isEmpty)
      #expect(client.lostReason != nil)
    }
    #expect(log.made == [SocketAddress(ipv4: (198, 51, 100, 1), port: 5555)])
    good.pieces = [Array(" second".utf8)]
    good.connectionMadeAgain()
    runUntil(reactor) { good.received.count == 12 }
    #expect(good.lostReason == nil)
    #expect(factory.counters.live == 1)
    #expect(factory.counters.timedOut == 1)
    reactor.shutdown()
  }
}

extension TrickleClient {
  /// Writes the pieces queued since the connection was made.
  func connectionMadeAgain() { connectionMade() }
}

/// A root CA, an intermediate CA it signed, and a `localhost` leaf the intermediate signed,
/// made with the `openssl` CLI in `folder` (root.crt, mid.crt, leaf.crt, leaf.key).
func makeCertificateChain(in folder: String) throws {
  let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  let script = """
    set -e
    cd "$1"
    openssl req -x509 \(ec) -keyout root.key -out root.crt -days 2 -subj /CN=twine-root \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req \(ec) -keyout mid.key -out mid.csr -subj /CN=twine-intermediate
    printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > mid.ext
    openssl x509 -req -in mid.csr -CA root.crt -CAkey root.key -CAcreateserial -out mid.crt -days 2 -extfile mid.ext
    openssl req \(ec) -keyout leaf.key -out leaf.csr -subj /CN=localhost
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > leaf.ext
    openssl x509 -req -in leaf.csr -CA mid.crt -CAkey mid.key -CAcreateserial -out leaf.crt -days 2 -extfile leaf.ext
    """
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
  let arguments = ["/bin/sh", "-c", script, "sh", folder]
  let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
  defer { for arg in argv { free(arg) } }
  var child: pid_t = 0
  guard posix_spawn(&child, "/bin/sh", &actions, nil, argv, environ) == 0 else {
    throw SocketError(code: errno, message: "cannot run /bin/sh")
  }
  var status: Int32 = 0
  while waitpid(child, &status, 0) < 0 && errno == EINTR {}
  guard status == 0 else { throw SocketError(code: status, message: "openssl failed making the chain") }
}

extension EndpointLoopbackTests {
  @Test("ssl:…:extraCertChain= sends the intermediate: a client trusting only the root connects, and not without it")
  func extraCertChain() throws {
    let folder = try SocketFolder()
    try makeCertificateChain(in: folder.path)
    let reactor = try Reactor()
    let base = "ssl:0:privateKey=\(folder.file("leaf.key")):certKey=\(folder.file("leaf.crt")):interface=127.0.0.1"
    let chained = try reactor.listen(base + ":extraCertChain=\(folder.file("mid.crt"))", factory: Factory(Echo.self))
    let bare = try reactor.listen(base, factory: Factory(Echo.self))
    let trust = ":caCertsFile=\(folder.file("root.crt"))"
    let client = try Self.exchange(
      reactor, "ssl:localhost:\(chained.address.port)" + trust, Array("chained".utf8), expecting: 7)
    #expect(client.received == Array("chained".utf8))
    let maker = ClientMaker()
    try reactor.connect(ClientEndpoint("ssl:localhost:\(bare.address.port)" + trust), factory: maker)
    runUntil(reactor) { !maker.failed.isEmpty }
    #expect(maker.failed.first?.tlsText?.contains("certificate verify failed") == true, "\(maker.failed)")
    #expect(throws: TwineError.self) {
      try reactor.listen(base + ":extraCertChain=\(folder.file("nothing.pem"))", factory: Factory(Echo.self))
    }
    reactor.shutdown()
  }
}
