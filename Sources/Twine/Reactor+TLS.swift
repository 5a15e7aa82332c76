/// TLS: listening and connecting with OpenSSL bufferevents.
extension Reactor {
  /// Listens on `port` like ``listenTCP(_:factory:backlog:interface:)``, speaking TLS
  /// with `tls` (``TLSOptions/server(certificateFile:privateKeyFile:clientCAFile:handshakeTimeout:)``).
  /// The certificate and key are loaded now: a missing or mismatched file throws
  /// ``TwineError/tls(_:)``. Each connection's protocol is built and started after its
  /// handshake; a failed handshake ends only that connection.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown``: no file is read, nothing is bound.
  @discardableResult
  public func listenSSL(
    _ port: Int, factory: Factory, tls: TLSOptions, backlog: Int = 511, interface: String = ""
  ) throws(TwineError) -> ListeningPort {
    try admit("listenSSL")
    guard tls.role == .server else { throw .tls("listenSSL needs server options (TLSOptions.server)") }
    let setup = TLSSetup(context: try tlsContext(for: tls), options: tls)
    return try ListeningPort(
      reactor: self, port: port, interface: interface, backlog: backlog, factory: factory, tls: setup)
  }

  /// Connects like ``connectTCP(_:_:factory:timeout:)`` and speaks TLS with `tls`: by
  /// default the system's CAs must vouch for the server's certificate, which must name
  /// `host` (or ``TLSOptions/serverName``). `timeout` bounds the connect and the
  /// handshake together. The factory's `clientConnectionFailed` hears a failed handshake
  /// as `.tlsFailed`, with OpenSSL's reason (`certificate verify failed (self-signed certificate)`).
  /// Throws ``TwineError/tls(_:)`` when a file named in `tls` cannot be loaded.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown``: no file is read, no
  /// socket made, and the factory hears nothing.
  @discardableResult
  public func connectSSL(
    _ host: String, _ port: Int, factory: ClientFactory, tls: TLSOptions = .client(), timeout: Double? = 30
  ) throws(TwineError) -> TCPConnector {
    try admit("connectSSL")
    guard tls.role == .client else { throw .tls("connectSSL needs client options (TLSOptions.client)") }
    let setup = TLSSetup(context: try tlsContext(for: tls), options: tls)
    let connector = TCPConnector(reactor: self, host: host, port: port, factory: factory, timeout: timeout, tls: setup)
    connector.connect()
    return connector
  }

  /// The context for `options`, made on first use and kept while the reactor lives: the
  /// files are read once per distinct certificate, key and trust. Throws
  /// ``TwineError/reactorShutDown`` after ``shutdown()`` (`startTLS` comes here too).
  func tlsContext(for options: TLSOptions) throws(TwineError) -> TLSContext {
    try admit("tlsContext")
    let key = TLSContext.Key(options)
    if let known = tlsContexts[key] { return known }
    let made = try TLSContext(options)
    tlsContexts[key] = made
    return made
  }
}
