import CLibevent

/// A listening TCP or UNIX-domain stream socket (Twisted's `IListeningPort`). Owns one `evconnlistener`
/// and, while accepting is backed off, one timer event.
public final class ListeningPort {
  /// Weak: the reactor's shutdown stops every port it made (its gate makes none after), so
  /// a port outliving its reactor is already stopped and inert; the weak reference makes
  /// that a guarantee rather than a rule (nil inside the reactor's deinit, too).
  private(set) weak var reactor: Reactor?
  private var listener: OpaquePointer?
  private var backoffTimer: OpaquePointer?
  /// The factory that builds a protocol per accepted connection.
  public let factory: Factory
  /// The bound address; its port is the real one when 0 was asked for.
  public let address: SocketAddress
  private var warnedExhaustion = false
  /// For a TLS port (`listenSSL`): the context its connections handshake with (replaced by `reloadCertificate`).
  var tls: TLSSetup?
  /// TLS handshakes in progress, against ``maxPendingHandshakes``.
  private let handshakes = HandshakeBudget(limit: 1024)
  /// A reactor group's acceptor: given each accepted plain socket first; true when it
  /// took it (handed it to another reactor), false to serve it here.
  var handOff: ((_ fd: Int32, _ peer: SocketAddress) -> Bool)?

  /// TLS ports: how many handshakes may be in progress at once (default 1,024). A connection
  /// past it is closed at once, before any TLS work, so peers that connect and stay silent
  /// cannot grow the process until their handshake deadline.
  public var maxPendingHandshakes: Int {
    get { handshakes.limit }
    set { handshakes.limit = max(1, newValue) }
  }

  /// TLS handshakes in progress now.
  public var pendingHandshakes: Int { handshakes.inProgress }

  /// Connections closed because ``maxPendingHandshakes`` were already in progress.
  public var refusedHandshakes: Int { handshakes.refused }

  /// TLS handshakes on this port that failed (or timed out) before the connection got a protocol.
  public var failedHandshakes: Int { handshakes.failed }

  /// This port's own counts (its factory's ``Factory/counters`` add up every port's connections).
  public let stats = ListenerStats()

  /// How long accepting pauses after the process runs out of file descriptors.
  static let exhaustionBackoff = 0.1

  /// The UNIX-domain socket file this port made (removed when it stops), with its identity;
  /// nil once handed over to a successor process (ControlSocket.swift).
  var socketFile: SocketFile?

  /// Listens on TCP `port` of numeric `interface` (empty: every IPv4 interface); with
  /// `reusePort`, shares the port with other sockets that set `SO_REUSEPORT` (a reactor group).
  convenience init(
    reactor: Reactor, port: Int, interface: String, backlog: Int, factory: Factory, tls: TLSSetup? = nil,
    reusePort: Bool = false
  ) throws(TwineError) {
    guard let numeric = NumericAddress(host: interface, port: port) else {
      throw .badAddress(interface.isEmpty ? "port \(port)" : interface)
    }
    let fd: Int32
    do throws(SocketError) {
      fd = try Syscall.socket(numeric.family, .stream)
      do throws(SocketError) {
        try Syscall.setOption(fd, SOL_SOCKET, SO_REUSEADDR, true)
        if reusePort { try Syscall.setOption(fd, SOL_SOCKET, SO_REUSEPORT, true) }
        try Syscall.bind(fd, numeric)
        try Syscall.listen(fd, backlog: Int32(backlog))
      } catch {
        try? Syscall.close(fd)
        throw error
      }
    } catch {
      throw .cannotListen(interface: interface, port: port, cause: error)
    }
    guard let made = Self.listener(reactor: reactor, fd: fd) else {
      throw .cannotListen(interface: interface, port: port, cause: .from(code: ENOMEM))
    }
    let address = (try? Syscall.localAddress(fd)) ?? SocketAddress(.ipv4(0), port: port)
    self.init(reactor: reactor, listener: made, address: address, factory: factory, socketFile: nil, tls: tls)
  }

  /// A disabled `evconnlistener` over `fd`, a socket already listening (closed on failure).
  /// Created disabled: the callback context (the port) is not ready until its init ends.
  /// Accepted sockets are non-blocking and close-on-exec (libevent's `accept4`).
  static func listener(reactor: Reactor, fd: Int32) -> OpaquePointer? {
    let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED)
    // Backlog 0: the socket listens already (our listen(2) reported its own errno).
    guard let made = evconnlistener_new(reactor.base, nil, nil, flags, 0, fd) else {
      try? Syscall.close(fd)
      return nil
    }
    return made
  }

  /// Takes a disabled `listener` (TCP or UNIX-domain), sets its callbacks and starts accepting.
  init(
    reactor: Reactor, listener made: OpaquePointer, address: SocketAddress, factory: Factory,
    socketFile: SocketFile?, tls: TLSSetup? = nil
  ) {
    self.reactor = reactor
    self.factory = factory
    self.tls = tls
    self.address = address
    self.socketFile = socketFile
    listener = made
    let context = Unmanaged.passUnretained(self).toOpaque()
    evconnlistener_set_cb(
      made,
      { _, fd, sa, length, context in
        Unmanaged<ListeningPort>.fromOpaque(context!).takeUnretainedValue().accepted(fd, sa!, Int(length))
      }, context)
    evconnlistener_set_error_cb(
      made, { _, context in Unmanaged<ListeningPort>.fromOpaque(context!).takeUnretainedValue().acceptFailed() })
    reactor.ports[ObjectIdentifier(self)] = self
    factory.doStart()
    evconnlistener_enable(made)
  }

  deinit { assert(listener == nil, "ListeningPort freed while listening") }

  /// True until ``stopListening()``.
  public var isListening: Bool { listener != nil }

  /// True between ``pauseAccepting()`` and ``resumeAccepting()``.
  public private(set) var isPaused = false

  /// Stops accepting: new peers wait in the kernel's backlog (up to its size) until
  /// ``resumeAccepting()``; the socket stays bound and open connections are untouched.
  public func pauseAccepting() {
    guard let listener, !isPaused else { return }
    isPaused = true
    evconnlistener_disable(listener)
  }

  /// Accepts again after ``pauseAccepting()``.
  public func resumeAccepting() {
    guard isPaused else { return }
    isPaused = false
    resume()
  }
  /// The listening socket's descriptor, until ``stopListening()`` closes it.
  var fileDescriptor: Int32? { listener.map { evconnlistener_get_fd($0) } }

  /// Closes the listening socket (and removes a UNIX-domain socket's file). Open connections stay open. Idempotent.
  public func stopListening() {
    guard let listener else { return }
    withExtendedLifetime(self) {
      evconnlistener_free(listener)
      self.listener = nil
      if let backoffTimer {
        event_free(backoffTimer)
        self.backoffTimer = nil
      }
      reactor?.ports[ObjectIdentifier(self)] = nil
      handOff = nil
      if let socketFile { Self.removeSocketFile(socketFile) }
      factory.doStop()
    }
  }

  private func accepted(_ fd: Int32, _ sa: UnsafeMutablePointer<sockaddr>, _ length: Int) {
    guard let reactor else { return Self.closeIgnoringErrors(fd) }
    warnedExhaustion = false  // an accept worked: the next exhaustion is a new episode, logged again
    stats.accepted += 1
    let peer = SocketAddress(sa, length: length) ?? SocketAddress(.ipv4(0), port: 0)
    if let tls {  // the protocol is built after the handshake
      guard handshakes.take() else {
        if handshakes.refused == 1 || handshakes.refused % 1000 == 0 {
          reactor.logger.warning(
            "too many TLS handshakes in progress; connection closed",
            metadata: ["port": "\(address)", "limit": "\(handshakes.limit)", "refused": "\(handshakes.refused)"])
        }
        return Self.closeIgnoringErrors(fd)
      }
      TCPConnection.acceptTLS(reactor: reactor, fd: fd, peer: peer, factory: factory, setup: tls, slot: handshakes)
      return
    }
    if let handOff, handOff(fd, peer) { return }  // refused there: counted by the factory, not here
    if !reactor.serveAccepted(fd, peer: peer, factory: factory) { stats.refused += 1 }
  }

  /// accept() failed for a reason that retrying at once will not cure (EMFILE, ENFILE,
  /// ENOBUFS, ENOMEM): the socket stays readable, so stop accepting for a moment
  /// instead of spinning a core, and log it once per episode.
  private func acceptFailed() {
    let code = twine_socket_error()  // libevent's accept failed: its errno, read before anything else runs
    guard let listener, let reactor else { return }
    stats.acceptErrors += 1
    if !warnedExhaustion {
      warnedExhaustion = true
      reactor.logger.warning(
        "accept failed; pausing accepts",
        metadata: ["port": "\(address)", "error": "\(SocketError.from(code: code))"])
    }
    evconnlistener_disable(listener)
    if backoffTimer == nil {
      let context = Unmanaged.passUnretained(self).toOpaque()
      backoffTimer = twine_evtimer_new(
        reactor.base, { _, _, context in Unmanaged<ListeningPort>.fromOpaque(context!).takeUnretainedValue().resume() },
        context)
    }
    var tv = timeval(tv_sec: 0, tv_usec: Int(Self.exhaustionBackoff * 1_000_000))
    event_add(backoffTimer, &tv)
  }

  /// Closes a socket nobody will use; a failed close leaves nothing to do.
  private static func closeIgnoringErrors(_ fd: Int32) { try? Syscall.close(fd) }

  private func resume() {
    guard let listener, !isPaused else { return }
    evconnlistener_enable(listener)
  }
}
