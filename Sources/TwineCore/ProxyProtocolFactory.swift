/// Serves connections that arrive through a proxy speaking HAProxy's PROXY protocol
/// (Twisted's `HAProxyWrappingFactory`; a `haproxy:` endpoint wraps its factory in one).
///
/// Each connection first reads the proxy's header (version 1 or 2, split over any number
/// of reads); only then is the wrapped factory asked for a protocol, with the client's
/// real address, and that protocol's `connectionMade` runs with a transport whose `peer`
/// is the client (a version 2 `LOCAL` header, or v1 `UNKNOWN`, keeps the socket's peer).
/// Bytes that followed the header in the same read are delivered next. A connection whose
/// header is missing, malformed, longer than ``maxHeaderLength`` or not complete within
/// ``headerTimeout`` seconds is aborted alone (`.protocolError` / `.timedOut`), before any
/// protocol of the wrapped factory exists.
///
/// ```swift
/// let factory = ProxyProtocolFactory(wrapping: Factory(Echo.self))
/// try reactor.listenTCP(8025, factory: factory)
/// ```
///
/// The wrapper shares the wrapped factory's counters: a connection counts as accepted when
/// its socket is, and as refused too when the wrapped factory refuses the real client.
public final class ProxyProtocolFactory: Factory {
  /// The factory that serves the clients.
  public let wrapped: Factory
  /// The longest header accepted, in bytes (default 4,096).
  public var maxHeaderLength = 4096
  /// Seconds a connection may take to send its whole header (default 10).
  public var headerTimeout = 10.0
  /// Called on the reactor's thread with each header read and the socket's own peer (the
  /// proxy), before the wrapped factory builds the protocol; a `haproxy:` endpoint logs it.
  public var onHeader: ((ProxyHeader, _ proxy: SocketAddress) -> Void)?

  /// Wraps `factory`, whose counters it shares.
  public init(wrapping factory: Factory) {
    wrapped = factory
    super.init(ProxyHeaderReceiver.self, counters: factory.counters)
  }

  /// A receiver that reads the header, then hands the connection to the wrapped factory's protocol.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let receiver = ProxyHeaderReceiver()
    receiver.factory = self
    receiver.owner = self
    return receiver
  }

  /// Starts the wrapped factory with the first port.
  public override func startFactory() { wrapped.doStart() }

  /// Stops the wrapped factory with the last port.
  public override func stopFactory() { wrapped.doStop() }
}
