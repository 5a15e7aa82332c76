/// Builds one ``Protocol`` per connection and holds what all of them share
/// (Twisted's `Factory`): counters and whatever state a subclass adds.
///
/// Give it a protocol class, or a closure that builds a configured protocol
/// for each peer (Twisted's "any callable", NIO's `childChannelInitializer`):
///
/// ```swift
/// let plain = Factory(Echo.self)
/// let limited = Factory { _ in CountingEcho(maxConnections: 10) }
/// reactor.listenTCP(8025, factory: limited)
/// ```
open class Factory {
  /// The protocol class this factory builds: the one passed to ``init(_:counters:)``, or the
  /// closure's result type for ``init(counters:_:)`` (name it, `{ peer -> Greeter? in ... }`,
  /// when a closure of several statements would otherwise give `Protocol`).
  public let protocolType: Protocol.Type

  /// Live, accepted and refused connections and bytes in/out, updated by the transports.
  public let counters: ConnectionCounters

  /// How many ports or connectors use this factory; ``startFactory()`` runs at 0 → 1, ``stopFactory()`` at 1 → 0.
  public private(set) var numPorts = 0

  private let make: (SocketAddress) -> Protocol?

  /// Makes a factory that builds instances of `protocolType` through `init()`. Pass `counters`
  /// to share another factory's (a wrapping factory does, so the wrapped one's counts stay true).
  public init(_ protocolType: Protocol.Type, counters: ConnectionCounters = ConnectionCounters()) {
    self.protocolType = protocolType
    self.counters = counters
    self.make = { _ in protocolType.init() }
  }

  /// Makes a factory that calls `build` with the peer's address for each new connection;
  /// `build` returns the protocol, configured, or nil to refuse the peer. The factory sets
  /// each protocol's ``Protocol/factory`` itself. Pass `counters` to share another factory's.
  ///
  /// `build` runs on the reactor's thread and may capture any state the protocols share
  /// (a room, a limit, a test's results); the factory keeps it alive. A protocol that takes
  /// its configuration in its own `init` must also write `required init()` (``Protocol``
  /// requires it for ``init(_:counters:)``), usually delegating with defaults:
  ///
  /// ```swift
  /// final class Greeter: Protocol {
  ///   let greeting: String
  ///   init(greeting: String) {
  ///     self.greeting = greeting
  ///     super.init()
  ///   }
  ///   required convenience init() { self.init(greeting: "hello") }
  ///   override func connectionMade() { transport.write(greeting + "\r\n") }
  /// }
  ///
  /// let factory = Factory { peer in
  ///   peer.port == 0 ? nil : Greeter(greeting: "hello, \(peer)")
  /// }
  /// ```
  ///
  /// A protocol with `var` settings needs no init at all: set them in `build`.
  public init<P: Protocol>(
    counters: ConnectionCounters = ConnectionCounters(), _ build: @escaping (_ peer: SocketAddress) -> P?
  ) {
    self.protocolType = P.self
    self.counters = counters
    self.make = build
  }

  /// Builds the protocol for a new connection from `peer`, or returns nil to refuse it
  /// (the socket is closed at once and ``ConnectionCounters/refused`` counts it).
  /// Sets the protocol's ``Protocol/factory`` to this factory; an override should too.
  open func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    guard let proto = make(peer) else { return nil }
    proto.factory = self
    return proto
  }

  /// Called once before the first port or connector starts using this factory.
  open func startFactory() {}

  /// Called once after the last port or connector stops using this factory.
  open func stopFactory() {}

  /// Ports call this when they start; runs ``startFactory()`` for the first.
  public final func doStart() {
    if numPorts == 0 { startFactory() }
    numPorts += 1
  }

  /// Ports call this when they stop; runs ``stopFactory()`` for the last.
  public final func doStop() {
    guard numPorts > 0 else { return }
    numPorts -= 1
    if numPorts == 0 { stopFactory() }
  }
}
