import CLibevent

/// A listening TCP or UNIX-domain stream socket (Twisted's `IListeningPort`). Owns one `evconnlistener`
/// and, while accepting is backed off, one timer event.
public final class ListeningPort {
  /// Unowned(unsafe): the reactor frees this object's libevent handle in its shutdown, before it goes,
  /// and nothing reads `reactor` once the handle is gone (that also makes reads in the reactor's deinit legal).
  private unowned(unsafe) let reactor: Reactor
  private var listener: OpaquePointer?
  private var backoffTimer: OpaquePointer?
  /// The factory that builds a protocol per accepted connection.
  public let factory: Factory
  /// The bound address; its port is the real one when 0 was asked for.
  public let address: SocketAddress
  private var warnedExhaustion = false
  /// For a TLS port (`listenSSL`): the context its connections handshake with.
  private let tls: TLSSetup?

  /// How long accepting pauses after the process runs out of file descriptors.
  static let exhaustionBackoff = 0.1

  /// The UNIX-domain socket file this port made (removed when it stops), with its identity.
  private let socketFile: SocketFile?

  /// Listens on TCP `port` of numeric `interface` (empty: every IPv4 interface).
  convenience init(
    reactor: Reactor, port: Int, interface: String, backlog: Int, factory: Factory, tls: TLSSetup? = nil
  ) throws(TwineError) {
    guard var numeric = NumericAddress(host: interface, port: port) else {
      throw .badAddress(interface.isEmpty ? "port \(port)" : interface)
    }
    let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC)
    var made: OpaquePointer?
    var bindError: Int32 = 0
    numeric.withSockaddr { sa, length in
      // Created disabled: the callback context (self) is not ready until init ends.
      made = evconnlistener_new_bind(
        reactor.base, nil, nil, flags | UInt32(LEV_OPT_DISABLED), Int32(backlog), sa, Int32(length))
      if made == nil { bindError = twine_socket_error() }
    }
    guard let made else {
      throw .cannotListen(interface: interface, port: port, cause: .from(code: bindError))
    }
    let address = SocketAddress.of(fd: evconnlistener_get_fd(made), peer: false) ?? SocketAddress(.ipv4(0), port: port)
    self.init(reactor: reactor, listener: made, address: address, factory: factory, socketFile: nil, tls: tls)
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
      reactor.ports[ObjectIdentifier(self)] = nil
      if let socketFile { Self.removeSocketFile(socketFile) }
      factory.doStop()
    }
  }

  private func accepted(_ fd: Int32, _ sa: UnsafeMutablePointer<sockaddr>, _ length: Int) {
    warnedExhaustion = false  // an accept worked: the next exhaustion is a new episode, logged again
    let peer = SocketAddress(sa, length: length) ?? SocketAddress(.ipv4(0), port: 0)
    if let tls {  // the protocol is built after the handshake
      TCPConnection.acceptTLS(reactor: reactor, fd: fd, peer: peer, factory: factory, setup: tls)
      return
    }
    guard let proto = factory.buildProtocol(peer) else {
      factory.counters.noteRefused()
      evutil_closesocket(fd)
      return
    }
    TCPConnection(reactor: reactor, fd: fd, bev: nil, factory: factory, peer: peer, connector: nil)
      .start(with: proto)
  }

  /// accept() failed for a reason that retrying at once will not cure (EMFILE, ENFILE,
  /// ENOBUFS, ENOMEM): the socket stays readable, so stop accepting for a moment
  /// instead of spinning a core, and log it once per episode.
  private func acceptFailed() {
    let code = twine_socket_error()
    guard let listener else { return }
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

  private func resume() {
    guard let listener else { return }
    evconnlistener_enable(listener)
  }
}
