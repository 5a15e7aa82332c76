import TwineCore

/// Limits connections in total and per peer address (Twisted's
/// `LimitTotalConnectionsFactory` and `LimitConnectionsByPeer` in one).
///
/// A connection past a limit is refused: closed at once, or, when ``refusalMessage``
/// is set, sent that message and closed (the tutorial's "Too many connections, try
/// later"). Refusals count in `ConnectionCounters.refused`.
public final class ConnectionLimitFactory: WrappingFactory {
  /// The counts and limits; share one between the factories of several reactors.
  public let limits: ConnectionLimits
  /// Most connections open at once; nil for no limit.
  public var maxConnections: Int? { limits.maxConnections }
  /// Most connections open at once from one peer IP address; nil for no limit.
  public var maxPerPeer: Int? { limits.maxPerPeer }
  /// Sent to a refused peer before closing, or nil to close at once.
  public let refusalMessage: String?
  /// Connections open now through this factory (and any sharing its ``limits``).
  public var open: Int { limits.open }

  /// Wraps `factory` with the given limits.
  public convenience init(
    wrapping factory: Factory, maxConnections: Int? = nil, maxPerPeer: Int? = nil, refusalMessage: String? = nil
  ) {
    self.init(
      wrapping: factory, limits: ConnectionLimits(maxConnections: maxConnections, maxPerPeer: maxPerPeer),
      refusalMessage: refusalMessage)
  }

  /// Wraps `factory` with `limits`, which other factories (on other reactors) may share.
  public init(wrapping factory: Factory, limits: ConnectionLimits, refusalMessage: String? = nil) {
    self.limits = limits
    self.refusalMessage = refusalMessage
    super.init(wrapping: factory, wrapperType: CountedWrapper.self)
  }

  /// Open connections from `host` (an IP address as text).
  public func openConnections(from host: String) -> Int { limits.openConnections(from: host) }

  /// Refuses past a limit (a slot is taken atomically before the protocol is built);
  /// otherwise wraps the wrapped factory's protocol and counts it.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    guard limits.admit(peer.host) else {
      guard let refusalMessage else { return nil }
      counters.noteRefused()
      let refusal = Refusal()
      refusal.message = refusalMessage
      return refusal
    }
    guard let proto = super.buildProtocol(peer) as? CountedWrapper else {
      limits.release(peer.host)
      return nil
    }
    proto.limits = limits
    proto.peerHost = peer.host
    return proto
  }
}

/// Counts its connection out of the limits when it ends.
private final class CountedWrapper: ProtocolWrapper {
  var limits: ConnectionLimits?
  var peerHost = ""

  // Built but never connected (its socket failed first): the slot still goes back.
  deinit { limits?.release(peerHost) }

  override func connectionLost(_ reason: CloseReason) {
    limits?.release(peerHost)
    limits = nil
    super.connectionLost(reason)
  }
}

/// Says why and closes.
private final class Refusal: Protocol {
  var message = ""
  override func connectionMade() {
    transport.write(message)
    transport.loseConnection()
  }
}
