import TwineCore

/// Limits connections in total and per peer address (Twisted's
/// `LimitTotalConnectionsFactory` and `LimitConnectionsByPeer` in one).
///
/// A connection past a limit is refused: closed at once, or, when ``refusalMessage``
/// is set, sent that message and closed (the tutorial's "Too many connections, try
/// later"). Refusals count in `ConnectionCounters.refused`.
public final class ConnectionLimitFactory: WrappingFactory {
  /// Most connections open at once; nil for no limit.
  public let maxConnections: Int?
  /// Most connections open at once from one peer IP address; nil for no limit.
  public let maxPerPeer: Int?
  /// Sent to a refused peer before closing, or nil to close at once.
  public let refusalMessage: String?
  /// Connections open now through this factory.
  public private(set) var open = 0
  private var perPeer: [String: Int] = [:]

  /// Wraps `factory` with the given limits.
  public init(
    wrapping factory: Factory, maxConnections: Int? = nil, maxPerPeer: Int? = nil, refusalMessage: String? = nil
  ) {
    self.maxConnections = maxConnections
    self.maxPerPeer = maxPerPeer
    self.refusalMessage = refusalMessage
    super.init(wrapping: factory, wrapperType: CountedWrapper.self)
  }

  /// Open connections from `host` (an IP address as text).
  public func openConnections(from host: String) -> Int { perPeer[host, default: 0] }

  /// Refuses past a limit; otherwise wraps the wrapped factory's protocol and counts it.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let overTotal = maxConnections.map { open >= $0 } ?? false
    let overPeer = maxPerPeer.map { perPeer[peer.host, default: 0] >= $0 } ?? false
    if overTotal || overPeer {
      guard let refusalMessage else { return nil }
      counters.noteRefused()
      let refusal = Refusal()
      refusal.message = refusalMessage
      return refusal
    }
    guard let proto = super.buildProtocol(peer) as? CountedWrapper else { return nil }
    proto.limiter = self
    proto.peerHost = peer.host
    open += 1
    perPeer[peer.host, default: 0] += 1
    return proto
  }

  fileprivate func release(_ host: String) {
    open -= 1
    let left = perPeer[host, default: 1] - 1
    perPeer[host] = left > 0 ? left : nil
  }
}

/// Counts its connection out of the limits when it ends.
private final class CountedWrapper: ProtocolWrapper {
  var limiter: ConnectionLimitFactory?
  var peerHost = ""

  override func connectionLost(_ reason: CloseReason) {
    limiter?.release(peerHost)
    limiter = nil
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
