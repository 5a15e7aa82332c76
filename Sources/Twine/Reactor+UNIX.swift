import Glibc

/// UNIX-domain stream sockets: listening and connecting. Connections are the same
/// transport as TCP's (`setTCPNoDelay` and `setKeepAlive` throw there, harmlessly);
/// `transport.peerCredentials` tells who the peer process is.
extension Reactor {
  /// Listens on the UNIX-domain socket `path` and serves each connection with a protocol
  /// from `factory`. The socket file gets permissions `mode` before anyone can connect,
  /// and is removed when the port stops listening.
  ///
  /// A socket file left by a dead server is replaced. A path where a live server accepts
  /// connections, or that is not a socket, is left alone: the call throws
  /// ``TwineError/cannotListenOnPath(_:cause:)``.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown`` and touches nothing at `path`.
  @discardableResult
  public func listenUNIX(_ path: String, factory: Factory, mode: mode_t = 0o666, backlog: Int = 511)
    throws(TwineError) -> ListeningPort
  {
    try admit("listenUNIX")
    return try ListeningPort(reactor: self, path: path, mode: mode, backlog: backlog, factory: factory)
  }

  /// Connects to the UNIX-domain socket `path` and serves the connection with a protocol
  /// from `factory`. A missing path fails with `clientConnectionFailed(.error(ENOENT))`,
  /// a socket nobody accepts on with `.connectionRefused`, no connection within
  /// `timeout` seconds with `.timedOut`. After ``shutdown()`` no socket is made: the
  /// factory hears `clientConnectionFailed(.reactorShutdown)` at once.
  @discardableResult
  public func connectUNIX(_ path: String, factory: ClientFactory, timeout: Double? = 30) -> TCPConnector {
    let connector = TCPConnector(reactor: self, host: path, port: 0, factory: factory, timeout: timeout, unixPath: path)
    connector.connect()
    return connector
  }
}
