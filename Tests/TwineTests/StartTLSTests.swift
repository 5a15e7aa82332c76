import LoopbackTestSupport
import Testing

@testable import Twine

/// The server half of a STARTTLS exchange: plaintext until the line `STARTTLS`, then it
/// writes `greeting` in plaintext, upgrades, and either echoes or writes `afterUpgrade`
/// chunks of `ChunkedStream` and closes.
final class StartTLSServer: Protocol {
  var greeting: [UInt8] = []
  /// Bytes of `ChunkedStream` to write right after the upgrade, then close; nil: echo.
  var afterUpgrade: Int?
  var onLost: () -> Void = {}
  var plaintext: [UInt8] = []
  var secured: [UInt8] = []
  var upgraded = false
  var lostReason: CloseReason?

  override func dataReceived(_ data: RawSpan) {
    guard !upgraded else {
      data.withUnsafeBytes { secured.append(contentsOf: $0) }
      transport.write(data)
      return
    }
    data.withUnsafeBytes { plaintext.append(contentsOf: $0) }
    guard plaintext.ends(with: Array("STARTTLS\n".utf8)) else { return }
    upgraded = true
    transport.write(greeting)
    transport.write("GO\n")
    transport.startTLS(TestCertificates.server())
    if let total = afterUpgrade {
      ChunkedStream.write(total, to: transport)  // waits for the handshake
      transport.loseConnection()
    }
  }

  override func connectionLost(_ reason: CloseReason) {
    lostReason = reason
    onLost()
  }
}

/// The client half: asks for STARTTLS, reads the plaintext answer up to `GO`, upgrades,
/// then sends `payload` and collects what comes back.
final class StartTLSClient: Protocol {
  var payload: [UInt8] = []
  var expecting = 0
  var plaintext: [UInt8] = []
  var secured: [UInt8] = []
  /// When set, TLS bytes are checked against `ChunkedStream` instead of kept in `secured`.
  var checker: StreamChecker?
  /// Pause reading right after starting TLS (the test resumes it).
  var pauseAfterUpgrade = false
  var upgraded = false
  var lostReason: CloseReason?

  override func connectionMade() { transport.write("hello\nSTARTTLS\n") }

  override func dataReceived(_ data: RawSpan) {
    if upgraded {
      if checker != nil {
        checker!.check(data)
      } else {
        data.withUnsafeBytes { secured.append(contentsOf: $0) }
      }
      if secured.count >= expecting && !payload.isEmpty { transport.loseConnection() }
      return
    }
    data.withUnsafeBytes { plaintext.append(contentsOf: $0) }
    guard plaintext.ends(with: Array("GO\n".utf8)) else { return }
    upgraded = true
    transport.startTLS(TestCertificates.trustingClient())
    if pauseAfterUpgrade { transport.pauseProducing() }
    if !payload.isEmpty { transport.write(payload) }
  }

  override func connectionLost(_ reason: CloseReason) { lostReason = reason }
}

extension Array where Element == UInt8 {
  fileprivate func ends(with suffix: [UInt8]) -> Bool {
    count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
  }
}

@Suite("startTLS")
struct StartTLSTests {
  /// Runs one STARTTLS exchange, the server sending `greeting` and `afterUpgrade` (see
  /// `StartTLSServer`); returns both ends and the server's factory.
  func exchange(
    greeting: [UInt8] = [], afterUpgrade: Int? = nil, payload: [UInt8], expecting: Int, checked: Bool = false,
    pausedUntilServerCloses: Bool = false
  ) throws -> (server: StartTLSServer, client: StartTLSClient, Factory) {
    let reactor = try Reactor()
    let servers = StartTLSServers()
    servers.configure = { server in
      server.greeting = greeting
      server.afterUpgrade = afterUpgrade
    }
    let port = try reactor.listenTCP(0, factory: servers, interface: "127.0.0.1").address.port
    let clients = StartTLSClients()
    clients.configure = { client in
      client.payload = payload
      client.expecting = expecting
      if checked { client.checker = StreamChecker() }
      client.pauseAfterUpgrade = pausedUntilServerCloses
    }
    if pausedUntilServerCloses {
      servers.onLost = { reactor.callLater(0.1) { clients.built.first?.transport.resumeProducing() } }
    }
    reactor.connectTCP("localhost", port, factory: clients)
    runUntil(reactor, timeout: 60) {
      servers.built.first?.lostReason != nil && clients.built.first?.lostReason != nil
    }
    let server = try #require(servers.built.first)
    let client = try #require(clients.built.first)
    reactor.shutdown()
    return (server, client, servers)
  }

  @Test("a plain connection upgraded mid-stream: plaintext before, TLS after, no byte lost or repeated")
  func upgradeMidStream() throws {
    // Enough plaintext that part of it is still queued when the upgrade starts.
    let greeting = pattern(2 << 20, seed: 5)
    let payload = pattern(1 << 20, seed: 6)
    let (server, client, factory) = try exchange(greeting: greeting, payload: payload, expecting: payload.count)
    #expect(server.plaintext == Array("hello\nSTARTTLS\n".utf8))
    #expect(client.plaintext.count == greeting.count + 3)
    #expect(firstDifference(client.plaintext, greeting + Array("GO\n".utf8)) == nil)
    #expect(firstDifference(server.secured, payload) == nil)
    #expect(firstDifference(client.secured, payload) == nil)
    #expect(client.lostReason == .closedByUs)
    #expect(server.lostReason == .closedByPeer, "the client's close_notify came through the filter")
    #expect(factory.counters.bytesIn == server.plaintext.count + payload.count)
  }

  @Test("16 MiB written right after startTLS, then loseConnection, arrives whole and closes cleanly")
  func bulkAfterUpgrade() throws {
    let (server, client, _) = try exchange(afterUpgrade: 16 << 20, payload: [], expecting: 16 << 20, checked: true)
    #expect(client.checker?.count == 16 << 20)
    #expect(client.checker?.firstMismatch == nil)
    #expect(client.lostReason == .closedByPeer)
    #expect(server.lostReason == .closedByUs)
  }
  @Test("after startTLS, bytes that arrive together with close_notify are delivered before connectionLost")
  func tailBeforeCloseNotifyThroughFilter() throws {
    // The client pauses from its upgrade until the server has written 40 kB after its own,
    // sent close_notify and closed: the last record and the alert are read together.
    let (server, client, _) = try exchange(
      afterUpgrade: 40_000, payload: [], expecting: 40_000, checked: true, pausedUntilServerCloses: true)
    #expect(server.lostReason == .closedByUs)
    #expect(client.checker?.count == 40_000)
    #expect(client.checker?.firstMismatch == nil)
    #expect(client.lostReason == .closedByPeer)
  }
}

/// Configures and keeps the `StartTLSServer`s it builds.
final class StartTLSServers: Factory {
  var configure: (StartTLSServer) -> Void = { _ in }
  var built: [StartTLSServer] = []
  /// Called when one of its servers' connection is lost.
  var onLost: () -> Void = {}

  init() { super.init(StartTLSServer.self) }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let server = StartTLSServer()  // no `factory`: the built list would make a cycle
    server.onLost = { [weak self] in self?.onLost() }
    configure(server)
    built.append(server)
    return server
  }
}

/// Configures and keeps the `StartTLSClient`s it builds.
final class StartTLSClients: ClientFactory {
  var configure: (StartTLSClient) -> Void = { _ in }
  var built: [StartTLSClient] = []

  init() { super.init(StartTLSClient.self) }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let client = StartTLSClient()
    configure(client)
    built.append(client)
    return client
  }
}
