import TwineCore

/// Limits bandwidth (Twisted's `policies.ThrottlingFactory`, on libevent's token
/// buckets): each connection to ``perConnection``, and all of them together to
/// ``total``. Throttled connections read and write through libevent's buffers.
public final class ThrottlingFactory: WrappingFactory {
  /// Each connection's own limit, or nil.
  public let perConnection: RateLimit?
  /// The limit all connections share, or nil.
  public let total: RateLimitGroup?

  /// Wraps `factory` with the given limits.
  public init(wrapping factory: Factory, perConnection: RateLimit? = nil, total: RateLimit? = nil) {
    self.perConnection = perConnection
    self.total = total.map(RateLimitGroup.init)
    super.init(wrapping: factory, wrapperType: ThrottledWrapper.self)
  }

  /// Wraps the protocol in one that applies the limits when the connection starts.
  public override func makeWrapper(around inner: Protocol, peer: SocketAddress) -> Protocol? {
    let wrapper = super.makeWrapper(around: inner, peer: peer) as? ThrottledWrapper
    wrapper?.limit = perConnection
    wrapper?.group = total
    return wrapper
  }
}

/// Applies its limits before the wrapped protocol hears of the connection.
private final class ThrottledWrapper: ProtocolWrapper {
  var limit: RateLimit?
  var group: RateLimitGroup?

  override func connectionMade() {
    if let limit { transport.setRateLimit(limit) }
    if let group { transport.joinRateLimitGroup(group) }
    super.connectionMade()
  }
}
