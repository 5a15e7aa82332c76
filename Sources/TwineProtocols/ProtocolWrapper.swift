import TwineCore

/// A protocol that stands between a transport and another protocol (Twisted's
/// `policies.ProtocolWrapper`): it passes every event up to ``wrapped`` and is the
/// wrapped protocol's transport, passing every call down. Subclass it to watch or
/// change the traffic; ``WrappingFactory`` builds one per connection.
open class ProtocolWrapper: Protocol, Transport, HalfCloseable {
  /// The protocol that does the real work; nil once the connection is lost.
  public private(set) var wrapped: Protocol!

  /// Makes an empty wrapper; ``wrap(_:)`` sets the wrapped protocol.
  public required init() {}

  /// Makes a wrapper around `wrapped`.
  public init(wrapping wrapped: Protocol) {
    self.wrapped = wrapped
  }

  /// Sets the protocol to wrap (before the connection starts).
  public func wrap(_ protocolToWrap: Protocol) { wrapped = protocolToWrap }

  // MARK: Events, passed up

  /// Connects the wrapped protocol, with this wrapper as its transport.
  open override func connectionMade() { wrapped.makeConnection(self) }

  /// Passes the bytes up.
  open override func dataReceived(_ data: RawSpan) { wrapped.dataReceived(data) }

  /// Passes the drain up: the wrapped protocol decides how to finish.
  open override func connectionDraining() { wrapped?.connectionDraining() }

  /// Passes the end up, then lets go of the wrapped protocol (it holds this wrapper as
  /// its transport: keeping both would be a cycle).
  open override func connectionLost(_ reason: CloseReason) {
    wrapped.connectionClosed(reason)
    wrapped = nil
  }

  /// Passes a half-close up to a `HalfCloseable` wrapped protocol; for any other, ends
  /// the connection as the transport would (flush, then `.closedByPeer`).
  open func readConnectionLost() {
    if let halfCloseable = wrapped as? any HalfCloseable {
      halfCloseable.readConnectionLost()
    } else {
      transport.loseConnection(reason: .closedByPeer)
    }
  }

  // MARK: Transport, passed down

  /// Passes the bytes down.
  open func write(_ data: RawSpan) { transport.write(data) }
  /// Passes the close down.
  open func loseConnection(reason: CloseReason) { transport.loseConnection(reason: reason) }
  /// Passes the abort down.
  open func abortConnection(reason: CloseReason) { transport.abortConnection(reason: reason) }
  /// Passes the half-close down.
  open func loseWriteConnection() { transport.loseWriteConnection() }
  /// Passes the pause down.
  open func pauseProducing() { transport.pauseProducing() }
  /// Passes the resume down.
  open func resumeProducing() { transport.resumeProducing() }
  /// The transport's peer.
  public var peer: SocketAddress { transport.peer }
  /// The transport's local address.
  public var host: SocketAddress { transport.host }
  /// The transport's peer credentials (UNIX-domain sockets).
  public var peerCredentials: PeerCredentials? { transport.peerCredentials }
  /// The transport's closing state.
  public var disconnecting: Bool { transport.disconnecting }
  /// The transport's queued byte count.
  public var pendingWriteCount: Int { transport.pendingWriteCount }
  /// The transport's limits.
  public var writeBufferLimits: WriteBufferLimits {
    get { transport.writeBufferLimits }
    set { transport.writeBufferLimits = newValue }
  }
  /// Registers the producer with the transport.
  open func registerProducer(_ producer: any PushProducer) { transport.registerProducer(producer) }
  /// Unregisters it from the transport.
  open func unregisterProducer() { transport.unregisterProducer() }
  /// The transport's scheduler.
  public var scheduler: any Scheduler { transport.scheduler }
  /// Passes the limit down.
  open func setRateLimit(_ limit: RateLimit?) { transport.setRateLimit(limit) }
  /// Passes the group down.
  open func joinRateLimitGroup(_ group: RateLimitGroup) { transport.joinRateLimitGroup(group) }
  /// Passes the upgrade down (the wrapper keeps seeing the plaintext).
  open func startTLS(_ options: TLSOptions) { transport.startTLS(options) }
  /// Passes the option down.
  open func setTCPNoDelay(_ enabled: Bool) throws(SocketError) { try transport.setTCPNoDelay(enabled) }
  /// Passes the option down.
  open func setKeepAlive(_ enabled: Bool) throws(SocketError) { try transport.setKeepAlive(enabled) }
}
