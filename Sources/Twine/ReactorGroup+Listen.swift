import Glibc

/// Listening with every reactor of a group.
extension ReactorGroup {
  /// Listens on TCP `port` (0 picks a free one; read ``GroupListeningPort/address``) with
  /// every reactor. `factory` is called once on each reactor's thread and makes that
  /// reactor's own `Factory`; what it captures is shared by all, so it must be `Sendable`.
  /// `interface` is a numeric IPv4 or IPv6 address; empty means every IPv4 interface.
  /// Throws what a reactor's `listenTCP` throws; then no reactor listens. Call it from outside
  /// the group's threads (it waits for each reactor in turn).
  @discardableResult
  public func listenTCP(
    _ port: Int, interface: String = "", backlog: Int = 511,
    distribution: AcceptDistribution = .platformDefault,
    factory: @escaping @Sendable (ReactorThread) -> Factory
  ) throws(TwineError) -> GroupListeningPort {
    switch distribution {
    case .reusePort:
      return try listenEach(port, interface: interface, backlog: backlog, tls: nil, handshakes: 0, factory: factory)
    case .roundRobin:
      return try listenRoundRobin(factory) { reactor, made throws(TwineError) in
        try reactor.listenTCP(port, factory: made, backlog: backlog, interface: interface)
      }
    }
  }

  /// Listens on TCP `port` with every reactor, speaking TLS with `tls`, like
  /// ``Reactor/listenSSL(_:factory:tls:backlog:interface:)``; always
  /// ``AcceptDistribution/reusePort``. Each reactor allows `maxPendingHandshakes` in progress.
  @discardableResult
  public func listenSSL(
    _ port: Int, tls: TLSOptions, interface: String = "", backlog: Int = 511, maxPendingHandshakes: Int = 1024,
    factory: @escaping @Sendable (ReactorThread) -> Factory
  ) throws(TwineError) -> GroupListeningPort {
    try listenEach(
      port, interface: interface, backlog: backlog, tls: tls, handshakes: maxPendingHandshakes, factory: factory)
  }

  /// Listens on the UNIX-domain socket `path` like ``Reactor/listenUNIX(_:factory:mode:backlog:)``;
  /// reactor 0 accepts and hands the sockets round-robin to every reactor
  /// (``AcceptDistribution/roundRobin``: `SO_REUSEPORT` does not spread UNIX-domain sockets).
  @discardableResult
  public func listenUNIX(
    _ path: String, mode: mode_t = 0o666, backlog: Int = 511, factory: @escaping @Sendable (ReactorThread) -> Factory
  ) throws(TwineError) -> GroupListeningPort {
    try listenRoundRobin(factory) { reactor, made throws(TwineError) in
      try reactor.listenUNIX(path, factory: made, mode: mode, backlog: backlog)
    }
  }

  /// One `SO_REUSEPORT` socket per reactor: reactor 0 binds first (learning the port when
  /// 0 was asked for), the others bind the same port.
  private func listenEach(
    _ port: Int, interface: String, backlog: Int, tls: TLSOptions?, handshakes: Int,
    factory: @escaping @Sendable (ReactorThread) -> Factory
  ) throws(TwineError) -> GroupListeningPort {
    var ports: [ThreadBound<ListeningPort>] = []
    var address: SocketAddress?
    for member in reactors {
      let bind = address?.port ?? port
      do {
        let (made, bound) = try member.perform { reactor throws(TwineError) in
          let listening = try reactor.listenTCP(
            sharing: bind, factory: factory(member), backlog: backlog, interface: interface, tls: tls)
          if tls != nil { listening.maxPendingHandshakes = handshakes }
          return (ThreadBound(listening, on: member), listening.address)
        }
        ports.append(made)
        if address == nil { address = bound }
      } catch {
        GroupListeningPort.stop(ports, [])
        throw error
      }
    }
    return GroupListeningPort(address: address!, distribution: .reusePort, ports: ports, targets: [])
  }

  /// One listening socket on reactor 0 (made by `listen`), which hands each accepted
  /// socket to the next reactor in turn, itself included.
  private func listenRoundRobin(
    _ factory: @escaping @Sendable (ReactorThread) -> Factory,
    listen: @escaping @Sendable (Reactor, Factory) throws(TwineError) -> ListeningPort
  ) throws(TwineError) -> GroupListeningPort {
    var targets: [ThreadBound<Factory>] = []
    for member in reactors.dropFirst() {
      do {
        targets.append(
          try member.perform { _ in
            let made = factory(member)
            made.doStart()
            return ThreadBound(made, on: member)
          })
      } catch {
        GroupListeningPort.stop([], targets)
        throw error
      }
    }
    let acceptor = reactors[0]
    let handTo = targets
    do {
      let (port, address) = try acceptor.perform { reactor throws(TwineError) in
        let listening = try listen(reactor, factory(acceptor))
        var turn = 0
        listening.handOff = { fd, peer in
          turn = turn + 1 == handTo.count + 1 ? 0 : turn + 1
          guard turn > 0 else { return false }  // reactor 0's turn: served where it was accepted
          let target = handTo[turn - 1]
          let socket = HandedOffSocket(fd)  // closed by its deinit if the target drops the call
          target.owner.callFromThread { reactor in
            reactor.serveHandedOff(socket, peer: peer, factory: target.get())
          }
          return true
        }
        return (ThreadBound(listening, on: acceptor), listening.address)
      }
      return GroupListeningPort(address: address, distribution: .roundRobin, ports: [port], targets: targets)
    } catch {
      GroupListeningPort.stop([], targets)
      throw error
    }
  }
}
