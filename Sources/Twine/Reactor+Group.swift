/// What a ``ReactorGroup`` asks of each of its reactors.
extension Reactor {
  /// Listens on TCP `port` with `SO_REUSEPORT` set, so every reactor of a group can bind it
  /// (over TLS with `tls`), like ``listenTCP(_:factory:backlog:interface:)`` otherwise.
  func listenTCP(
    sharing port: Int, factory: Factory, backlog: Int, interface: String, tls: TLSOptions?
  ) throws(TwineError) -> ListeningPort {
    try admit("listenTCP")
    var setup: TLSSetup?
    if let tls {
      guard tls.role == .server else { throw .tls("listenSSL needs server options (TLSOptions.server)") }
      setup = TLSSetup(context: try tlsContext(for: tls), options: tls)
    }
    return try ListeningPort(
      reactor: self, port: port, interface: interface, backlog: backlog, factory: factory, tls: setup,
      reusePort: true)
  }

  /// Serves the plain socket `fd`, accepted from `peer`, with a protocol from `factory`
  /// (refused: closed at once and counted). `fd` is owned from now on. False when refused.
  @discardableResult
  func serveAccepted(_ fd: Int32, peer: SocketAddress, factory: Factory) -> Bool {
    guard let proto = factory.buildProtocol(peer) else {
      factory.counters.noteRefused()
      try? Syscall.close(fd)
      return false
    }
    TCPConnection(reactor: self, fd: fd, bev: nil, factory: factory, peer: peer, connector: nil)
      .start(with: proto)
    return true
  }

  /// Serves a socket another reactor of the group accepted, unless this one has shut down
  /// (then it is closed).
  func serveHandedOff(_ socket: HandedOffSocket, peer: SocketAddress, factory: Factory) {
    guard let fd = socket.take() else { return }
    guard (try? admit("serveHandedOff")) != nil else {
      try? Syscall.close(fd)
      return
    }
    serveAccepted(fd, peer: peer, factory: factory)
  }
}
