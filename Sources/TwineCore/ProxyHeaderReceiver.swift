/// The protocol a ``ProxyProtocolFactory`` gives each connection: it reads the PROXY
/// header, then stands between the transport and the wrapped factory's protocol, passing
/// every event up and every call down, with ``peer`` the client's real address.
public final class ProxyHeaderReceiver: Protocol, Transport, HalfCloseable {
  /// The factory that made this receiver; nil once the connection is lost.
  var owner: ProxyProtocolFactory?
  private var parser = ProxyHeaderParser()
  private var deadline: (any ScheduledCall)?
  /// The wrapped factory's protocol, once the header is read; nil again once the connection is lost.
  public private(set) var wrapped: Protocol?
  /// The header, once read.
  public private(set) var header: ProxyHeader?
  private var realPeer: SocketAddress?

  /// Makes a receiver; ``ProxyProtocolFactory`` sets its owner.
  public required init() {}

  /// Starts the header's deadline.
  public override func connectionMade() {
    guard let owner else { return transport.abortConnection(reason: .protocolError("no ProxyProtocolFactory")) }
    parser = ProxyHeaderParser(maxLength: owner.maxHeaderLength)
    deadline = transport.scheduler.callLater(owner.headerTimeout) { [weak self] in
      guard let self, self.wrapped == nil else { return }
      self.transport.abortConnection(reason: .timedOut)
    }
  }

  /// Reads the header; after it, passes every byte up.
  public override func dataReceived(_ data: RawSpan) {
    if let wrapped { return wrapped.dataReceived(data) }
    switch parser.parse(data) {
    case .needMore:
      return
    case .invalid(let why):
      transport.abortConnection(reason: .protocolError(why))
    case .header(let header, let consumed):
      headerRead(header)
      guard let wrapped, !transport.disconnecting, consumed < data.byteCount else { return }
      wrapped.dataReceived(data.extracting(droppingFirst: consumed))
    }
  }

  private func headerRead(_ header: ProxyHeader) {
    deadline?.cancel()
    deadline = nil
    parser = ProxyHeaderParser()  // let go of the bytes held
    self.header = header
    let proxy = transport.peer
    realPeer = header.command == .proxy ? header.source : nil
    guard let owner else { return }
    owner.onHeader?(header, proxy)
    guard let proto = owner.wrapped.buildProtocol(realPeer ?? proxy) else {
      owner.counters.noteRefused()
      return transport.abortConnection(reason: .aborted)
    }
    wrapped = proto
    proto.makeConnection(self)
  }

  /// Passes the end up, then lets go of the wrapped protocol and the factory.
  public override func connectionLost(_ reason: CloseReason) {
    deadline?.cancel()
    deadline = nil
    wrapped?.connectionClosed(reason)
    wrapped = nil
    owner = nil
  }

  /// Passes a half-close up to a `HalfCloseable` wrapped protocol; for any other, ends the
  /// connection as the transport would (flush, then `.closedByPeer`).
  public func readConnectionLost() {
    if let halfCloseable = wrapped as? any HalfCloseable {
      halfCloseable.readConnectionLost()
    } else {
      transport.loseConnection(reason: .closedByPeer)
    }
  }

  // MARK: Transport, passed down

  /// The client's address from the header; the socket's peer before it, or for `LOCAL`/`UNKNOWN`.
  public var peer: SocketAddress { realPeer ?? transport.peer }
  /// The socket's local address.
  public var host: SocketAddress { transport.host }
  /// Passes the bytes down.
  public func write(_ data: RawSpan) { transport.write(data) }
  /// Passes the close down.
  public func loseConnection(reason: CloseReason) { transport.loseConnection(reason: reason) }
  /// Passes the abort down.
  public func abortConnection(reason: CloseReason) { transport.abortConnection(reason: reason) }
  /// Passes the half-close down.
  public func loseWriteConnection() { transport.loseWriteConnection() }
  /// Passes the pause down.
  public func pauseProducing() { transport.pauseProducing() }
  /// Passes the resume down.
  public func resumeProducing() { transport.resumeProducing() }
  /// The socket's peer credentials (the proxy's, on a UNIX-domain socket).
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
  public func registerProducer(_ producer: any PushProducer) { transport.registerProducer(producer) }
  /// Unregisters it from the transport.
  public func unregisterProducer() { transport.unregisterProducer() }
  /// The transport's scheduler.
  public var scheduler: any Scheduler { transport.scheduler }
  /// Passes the limit down.
  public func setRateLimit(_ limit: RateLimit?) { transport.setRateLimit(limit) }
  /// Passes the group down.
  public func joinRateLimitGroup(_ group: RateLimitGroup) { transport.joinRateLimitGroup(group) }
  /// Passes the upgrade down.
  public func startTLS(_ options: TLSOptions) { transport.startTLS(options) }
  /// Passes the option down.
  public func setTCPNoDelay(_ enabled: Bool) throws(SocketError) { try transport.setTCPNoDelay(enabled) }
  /// Passes the option down.
  public func setKeepAlive(_ enabled: Bool) throws(SocketError) { try transport.setKeepAlive(enabled) }
}
