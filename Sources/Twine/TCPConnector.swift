import CLibevent

/// An outgoing TCP connection attempt (Twisted's `Connector`): resolves the host
/// without blocking, connects with a timeout, and tells its `ClientFactory` how it went.
/// Also connects UNIX-domain stream sockets (``Reactor/connectUNIX(_:factory:timeout:)``; `destination` is `(path, 0)`).
public final class TCPConnector: Connector {
  /// Weak: a connector may outlive its reactor; it then does nothing.
  private weak var reactor: Reactor?
  private let factory: ClientFactory
  private let timeout: Double?
  /// The host and port being connected to.
  public let destination: (host: String, port: Int)
  private var lookup: Resolver.Lookup?
  private weak var connection: TCPConnection?
  private var attempting = false
  /// Set when connecting to a UNIX-domain socket: the path, which needs no resolving.
  private let unixPath: String?
  /// For `connectSSL`: the TLS context the connection handshakes with.
  private let tls: TLSSetup?

  init(
    reactor: Reactor, host: String, port: Int, factory: ClientFactory, timeout: Double?, unixPath: String? = nil,
    tls: TLSSetup? = nil
  ) {
    self.reactor = reactor
    self.unixPath = unixPath
    self.tls = tls
    self.destination = (host, port)
    self.factory = factory
    self.timeout = timeout
  }

  /// The reactor, for retries; nil once it is gone.
  public var scheduler: (any Scheduler)? { reactor }

  /// Starts an attempt (resolving the host first unless it is a numeric address).
  /// Each attempt passes the reactor's gate: once the reactor has shut down (or is gone)
  /// the factory hears `clientConnectionFailed(.reactorShutdown)` at once, and no socket is made.
  public func connect() {
    guard !attempting && connection == nil else { return }
    attempting = true
    factory.doStart()
    factory.startedConnecting(self)
    guard attempting else { return }  // startedConnecting called stopConnecting
    guard let reactor, (try? reactor.admit("connect")) != nil else {
      connectionFailed(.reactorShutdown)
      return
    }
    if let unixPath {
      guard let address = NumericAddress(SocketAddress(.unix(path: unixPath), port: 0)) else {
        return failLater(.error(SocketError(code: ENAMETOOLONG, message: "not a usable socket path: \(unixPath)")))
      }
      return start(address)
    }
    let host = destination.host == "localhost" ? "127.0.0.1" : destination.host
    if let address = NumericAddress(host: host, port: destination.port) {
      start(address)
      return
    }
    do {
      // The lookup holds the connector until it completes or is cancelled: a caller
      // may drop the connector returned by connectTCP.
      lookup = try reactor.sharedResolver().resolve(host, port: destination.port) { [self] result in
        guard self.attempting else { return }
        self.lookup = nil
        switch result {
        case .success(let address): self.start(address)
        case .failure(let reason): self.failLater(reason)  // evdns may fail inside resolve()
        }
      }
    } catch {
      failLater(.lookupFailed(error.description))
    }
  }

  /// Reports a failure from the loop: a factory retrying from `clientConnectionFailed`
  /// must not run inside `connectTCP`.
  /// After shutdown the reactor refuses the call (it comes back inactive): report at once then.
  private func failLater(_ reason: CloseReason) {
    guard let reactor, reactor.callLater(0, { [self] in connectionFailed(reason) }).isActive else {
      connectionFailed(reason)
      return
    }
  }

  private func start(_ address: NumericAddress) {
    // A lookup may complete late: the gate again, before anything is made on the base.
    guard let reactor, (try? reactor.admit("connect")) != nil else { return failLater(.reactorShutdown) }
    var address = address
    // Our own socket, so that the connection's callbacks are set before connecting:
    // libevent reports a connect that fails at once (a UNIX-domain socket nobody accepts
    // on) only to callbacks that are already set.
    let fd: Int32
    do throws(SocketError) {
      fd = try Syscall.socket(address.family, .stream)
    } catch {
      return failLater(.fromSocketError(error.code))
    }
    let session = tls.flatMap { TLSSession.connecting($0, serverName: destination.host, base: reactor.base, fd: fd) }
    guard
      let bev = tls == nil
        ? bufferevent_socket_new(reactor.base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) : session?.bufferevent
    else {
      try? Syscall.close(fd)
      failLater(tls == nil ? .error(SocketError.from(code: ENOMEM)) : .tlsFailed(OpenSSLError.drainQueue()))
      return
    }
    let peer = address.withSockaddr { SocketAddress($0, length: Int($1)) } ?? SocketAddress(.ipv4(0), port: 0)
    if let timeout, timeout.isFinite, timeout > 0, timeout < 1e9 {
      var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
      if tls != nil {
        var read = tv  // the TLS handshake waits on reads too: the timeout bounds connect and handshake
        bufferevent_set_timeouts(bev, &read, &tv)
      } else {
        bufferevent_set_timeouts(bev, nil, &tv)  // a connect waits on the write event
      }
    }
    let made = TCPConnection(
      reactor: reactor, fd: fd, bev: bev, factory: factory, peer: peer, connector: self,
      buffered: session != nil)
    made.tls = session
    made.armHandshakeDeadline(tls?.options.handshakeTimeout)  // bounds connect and handshake in all
    connection = made  // the reactor's table keeps it alive
    let rc = address.withSockaddr { bufferevent_socket_connect(bev, $0, Int32($1)) }
    if rc != 0 {
      // Reaches connectionFailed, from the loop: never inside connectTCP. libevent made the
      // connect(2) call, so its errno is read at once, before anything else runs.
      let reason = CloseReason.fromSocketError(twine_socket_error())
      made.connectFailure = reason
      reactor.callLater(0) { made.close(reason) }
    }
  }

  /// Stops an attempt in progress; the factory hears nothing of it.
  public func stopConnecting() {
    guard attempting else { return }
    attempting = false
    lookup?.cancel()
    lookup = nil
    if let connection, connection.state == .connecting {
      self.connection = nil
      connection.close(.aborted)
    }
    factory.doStop()
  }

  /// Closes the connection (flushing first) or stops the attempt.
  public func disconnect() {
    if let connection, connection.state != .connecting {
      connection.loseConnection()
    } else {
      stopConnecting()
    }
  }

  // MARK: From the connection

  func connectionEstablished(_ connection: TCPConnection) {
    attempting = false
  }

  func connectionFailed(_ reason: CloseReason) {
    guard attempting else { return }
    attempting = false
    connection = nil
    factory.clientConnectionFailed(self, reason: reason)
    factory.doStop()
  }

  func connectionLost(_ reason: CloseReason) {
    connection = nil
    factory.clientConnectionLost(self, reason: reason)
    factory.doStop()
  }
}
