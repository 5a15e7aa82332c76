/// Builds one ``Protocol`` per connection and holds what all of them share
/// (Twisted's `Factory`): counters and whatever state a subclass adds.
///
/// ```swift
/// let factory = Factory(Echo.self)
/// reactor.listenTCP(8025, factory: factory)
/// ```
open class Factory {
  /// The protocol class ``buildProtocol(_:)`` instantiates.
  public let protocolType: Protocol.Type

  /// Live, accepted and refused connections and bytes in/out, updated by the transports.
  public let counters: ConnectionCounters

  /// How many ports or connectors use this factory; ``startFactory()`` runs at 0 → 1, ``stopFactory()`` at 1 → 0.
  public private(set) var numPorts = 0

  /// Makes a factory that builds instances of `protocolType`. Pass `counters` to share
  /// another factory's (a wrapping factory does, so the wrapped one's counts stay true).
  public init(_ protocolType: Protocol.Type, counters: ConnectionCounters = ConnectionCounters()) {
    self.protocolType = protocolType
    self.counters = counters
  }

  /// Builds the protocol for a new connection from `peer`, or returns nil to refuse it
  /// (the socket is closed at once and ``ConnectionCounters/refused`` counts it).
  open func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let proto = protocolType.init()
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
