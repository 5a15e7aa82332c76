/// TCP: listening and connecting.
extension Reactor {
  /// Listens on `port` (0 picks a free one; read ``ListeningPort/address``) and serves
  /// each connection with a protocol from `factory`. `interface` is a numeric IPv4
  /// or IPv6 address; empty means every IPv4 interface, as in Twisted.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown`` and binds nothing.
  @discardableResult
  public func listenTCP(_ port: Int, factory: Factory, backlog: Int = 511, interface: String = "") throws(TwineError)
    -> ListeningPort
  {
    try admit("listenTCP")
    return try ListeningPort(reactor: self, port: port, interface: interface, backlog: backlog, factory: factory)
  }

  /// Connects to `host`:`port` (a name is resolved without blocking the loop) and
  /// serves the connection with a protocol from `factory`. Failure to connect within
  /// `timeout` seconds ends in `clientConnectionFailed(.timedOut)` (nil or `.infinity`: no
  /// limit). Failures are reported from the loop, never before this returns.
  /// After ``shutdown()`` no socket is made: the factory hears
  /// `clientConnectionFailed(.reactorShutdown)` at once (each attempt, retries included,
  /// passes the reactor's gate in ``TCPConnector/connect()``).
  @discardableResult
  public func connectTCP(_ host: String, _ port: Int, factory: ClientFactory, timeout: Double? = 30)
    -> TCPConnector
  {
    let connector = TCPConnector(reactor: self, host: host, port: port, factory: factory, timeout: timeout)
    connector.connect()
    return connector
  }
}
