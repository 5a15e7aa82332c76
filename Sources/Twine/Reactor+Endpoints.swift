import Glibc

/// Endpoints: listening and connecting where a string says (Twisted's `serverFromString` /
/// `clientFromString` and `endpoint.listen(factory)`).
extension Reactor {
  /// Listens where `endpoint` says and serves each connection with a protocol from `factory`:
  ///
  /// ```swift
  /// try reactor.listen(ServerEndpoint("tcp:8025:interface=127.0.0.1"), factory: Factory(Echo.self))
  /// try reactor.listen(ServerEndpoint("haproxy:unix:/run/echo.sock"), factory: Factory(Echo.self))
  /// ```
  ///
  /// A `haproxy:` endpoint wraps `factory` in a `ProxyProtocolFactory` (the port's
  /// ``ListeningPort/factory`` is the wrapper; it shares `factory`'s counters) and logs each
  /// header at debug level with the client's real address. A `systemd:` endpoint serves
  /// the socket systemd passed (see ``SystemdSockets``). A `udp:` endpoint throws
  /// ``TwineError/badEndpoint(_:)``: use ``listen(_:protocol:)``. Other errors are those of
  /// ``listenTCP(_:factory:backlog:interface:)``, ``listenUNIX(_:factory:mode:backlog:)`` and
  /// ``listenSSL(_:factory:tls:backlog:interface:)``.
  @discardableResult
  public func listen(_ endpoint: ServerEndpoint, factory: Factory) throws(TwineError) -> ListeningPort {
    switch endpoint {
    case .tcp(let port, let interface, let backlog), .tcp6(let port, let interface, let backlog):
      return try listenTCP(port, factory: factory, backlog: backlog, interface: interface)
    case .unix(let path, let mode, let backlog):
      return try listenUNIX(path, factory: factory, mode: mode_t(mode), backlog: backlog)
    case .ssl(let port, let interface, let backlog, let key, let certificate, let chain):
      var tls = TLSOptions.server(certificateFile: certificate, privateKeyFile: key)
      tls.extraCertificateChainFile = chain
      return try listenSSL(port, factory: factory, tls: tls, backlog: backlog, interface: interface)
    case .udp:
      throw .badEndpoint("\(endpoint) is a UDP endpoint: serve it with listen(_:protocol:)")
    case .systemd(let domain, let socket):
      try admit("listen(systemd)")
      let fd = try SystemdSockets.take(socket, domain: domain)
      return try adoptListeningSocket(fd, factory: factory)
    case .haproxy(let inner):
      let wrapper = ProxyProtocolFactory(wrapping: factory)
      wrapper.onHeader = { [weak self] header, proxy in
        self?.logger.debug(
          "PROXY header",
          metadata: [
            "peer":
              "\(header.source.map { "\($0)" } ?? "\(proxy) (\(header.command == .local ? "LOCAL" : "UNKNOWN"))")",
            "proxy": "\(proxy)", "version": "\(header.version)",
          ])
      }
      return try listen(inner, factory: wrapper)
    }
  }

  /// Parses `description` (`ServerEndpoint.init(_:)`) and listens there: throws
  /// `EndpointError` for a bad string, ``TwineError`` when listening fails.
  @discardableResult
  public func listen(_ description: String, factory: Factory) throws -> ListeningPort {
    try listen(try ServerEndpoint(description), factory: factory)
  }

  /// Binds a `udp:` endpoint and hands its datagrams to `proto` (see
  /// ``listenUDP(_:protocol:interface:maxDatagramSize:)``). Any other endpoint throws
  /// ``TwineError/badEndpoint(_:)``.
  @discardableResult
  public func listen(_ endpoint: ServerEndpoint, protocol proto: DatagramProtocol) throws(TwineError) -> UDPPort {
    guard case .udp(let port, let interface) = endpoint else {
      throw .badEndpoint("\(endpoint) is a stream endpoint: serve it with listen(_:factory:)")
    }
    return try listenUDP(port, protocol: proto, interface: interface)
  }

  /// Connects where `endpoint` says (``connectTCP(_:_:factory:timeout:)``,
  /// ``connectUNIX(_:factory:timeout:)`` or ``connectSSL(_:_:factory:tls:timeout:)``).
  @discardableResult
  public func connect(_ endpoint: ClientEndpoint, factory: ClientFactory) throws(TwineError) -> TCPConnector {
    switch endpoint {
    case .tcp(let host, let port, let timeout):
      return connectTCP(host, port, factory: factory, timeout: timeout)
    case .unix(let path, let timeout):
      return connectUNIX(path, factory: factory, timeout: timeout)
    case .ssl(let host, let port, let timeout, let tls):
      return try connectSSL(host, port, factory: factory, tls: tls, timeout: timeout)
    }
  }
}
