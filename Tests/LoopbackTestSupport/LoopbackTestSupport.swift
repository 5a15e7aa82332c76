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
  /// Sent on connect.
  public var message: [UInt8] = []
  /// Bytes to collect before closing.
  public var expecting = Int.max
  /// What arrived so far.
  public var received: [UInt8] = []
  /// Why the connection ended, once it did.
  public var lostReason: CloseReason?
  /// Called from `connectionLost`.
  public var done: (Client) -> Void = { _ in }

  /// Sends ``message``.
  public override func connectionMade() {
    if !message.isEmpty { transport.write(message) }
  }

  /// Collects; closes once ``expecting`` bytes arrived.
  public override func dataReceived(_ data: RawSpan) {
    data.withUnsafeBytes { received.append(contentsOf: $0) }
    if received.count >= expecting { transport.loseConnection() }
  }

  /// Records the reason and calls ``done``.
  public override func connectionLost(_ reason: CloseReason) {
    lostReason = reason
    done(self)
  }
}

/// A client factory that configures each `Client` and records failures.
public final class ClientMaker: ClientFactory {
  /// Applied to each new client.
  public var configure: (Client) -> Void = { _ in }
  /// Every connection failure, in order.
  public var failed: [CloseReason] = []
  /// Called on each failure.
  public var onFailure: (CloseReason) -> Void = { _ in }
  /// Every client built, in order.
  public var clients: [Client] = []

  /// Makes a factory of ``Client``s.
  public init() { super.init(Client.self) }

  /// A configured client, remembered in ``clients``.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let client = Client()  // no `factory`: the clients list would make a cycle
    configure(client)
    clients.append(client)
    return client
  }

  /// Records the failure and calls ``onFailure``.
  public override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
    failed.append(reason)
    onFailure(reason)
  }
}

/// A server listening on an ephemeral loopback port.
public func listen(_ reactor: Reactor, _ factory: Factory) throws -> Int {
  try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1").address.port
}
