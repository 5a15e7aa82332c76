// Loop and client helpers shared by the loopback test targets (TwineTests, EmbeddingTests).
import Testing
import Twine

/// Runs `reactor` until something calls `stop()`, or fails the test after `timeout` seconds.
public func run(_ reactor: Reactor, timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation) {
  var timedOut = false
  let guardCall = reactor.callLater(timeout) {
    timedOut = true
    reactor.stop()
  }
  reactor.run()
  guardCall.cancel()
  #expect(!timedOut, "reactor timed out after \(timeout) s", sourceLocation: sourceLocation)
}

/// Deterministic test bytes: `count` bytes of a pattern that differs per `seed`.
public func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8 &+ Int(seed)) }
}

/// A client that sends `message` on connect, collects what comes back until it has
/// `expecting` bytes (then closes) or the server closes, and reports through `done`.
public final class Client: Protocol {
  public var message: [UInt8] = []
  public var expecting = Int.max
  public var received: [UInt8] = []
  public var lostReason: CloseReason?
  public var done: (Client) -> Void = { _ in }

  public override func connectionMade() {
    if !message.isEmpty { transport.write(message) }
  }

  public override func dataReceived(_ data: RawSpan) {
    data.withUnsafeBytes { received.append(contentsOf: $0) }
    if received.count >= expecting { transport.loseConnection() }
  }

  public override func connectionLost(_ reason: CloseReason) {
    lostReason = reason
    done(self)
  }
}

/// A client factory that configures each `Client` and records failures.
public final class ClientMaker: ClientFactory {
  public var configure: (Client) -> Void = { _ in }
  public var failed: [CloseReason] = []
  public var onFailure: (CloseReason) -> Void = { _ in }
  public var clients: [Client] = []

  public init() { super.init(Client.self) }

  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let client = Client()  // no `factory`: the clients list would make a cycle
    configure(client)
    clients.append(client)
    return client
  }

  public override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
    failed.append(reason)
    onFailure(reason)
  }
}

/// A server listening on an ephemeral loopback port.
public func listen(_ reactor: Reactor, _ factory: Factory) throws -> Int {
  try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1").address.port
}
