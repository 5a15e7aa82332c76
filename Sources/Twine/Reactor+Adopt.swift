import CLibevent

/// Serving sockets the host already has.
extension Reactor {
  /// Serves `fd`, a stream socket the host already accepted or connected, with a protocol
  /// from `factory`, exactly like a connection accepted by ``listenTCP(_:factory:backlog:interface:)``
  /// (a `ClientFactory` is used as a plain factory: no connector, no `clientConnection…` calls).
  ///
  /// Ownership: once this returns, the socket is Twine's, refused or not: Twine closes it
  /// when the connection closes, and the caller must not read, write or close it any more.
  /// When this throws, nothing was done and the socket is still the caller's.
  ///
  /// The socket is made non-blocking and gets `TCP_NODELAY` (TCP only); its close-on-exec
  /// flag is left as it is. Returns the connection's transport, or nil when `factory`
  /// refused the peer (then the socket is already closed and counted as refused).
  /// Throws ``TwineError/cannotAdopt(fd:cause:)`` when `fd` is not an open, connected
  /// stream socket, and with cause `EBUSY` when a Twine connection (of any reactor) owns
  /// `fd` already: adopting it twice would close it twice. After ``shutdown()`` it throws
  /// ``TwineError/reactorShutDown`` and touches nothing: the socket is still the caller's.
  @discardableResult
  public func adoptStreamSocket(_ fd: Int32, factory: Factory) throws(TwineError) -> (any Transport)? {
    try admit("adoptStreamSocket")
    try claimForAdoption(fd)
    defer { DescriptorClaims.release(fd) }  // the connection's own claim (ConnectionList) holds it from here
    let peer: SocketAddress
    do throws(SocketError) {
      var type: Int32 = 0
      try Syscall.getOption(fd, SOL_SOCKET, SO_TYPE, into: &type)  // EBADF, ENOTSOCK
      guard type == Int32(SOCK_STREAM.rawValue) else { throw .from(code: EPROTOTYPE) }
      peer = try Syscall.peerAddress(fd)  // ENOTCONN: listening, or not connected (yet)
      try Syscall.setNonBlocking(fd)
    } catch {
      throw .cannotAdopt(fd: fd, cause: error)
    }
    guard let proto = factory.buildProtocol(peer) else {
      factory.counters.noteRefused()
      try? Syscall.close(fd)
      return nil
    }
    let connection = TCPConnection(
      reactor: self, fd: fd, bev: nil, factory: factory, peer: peer, connector: nil)
    connection.start(with: proto)
    return connection
  }

  /// Serves a connected socket bufferevent the host already has (on this reactor's base)
  /// with a protocol from `factory`, in buffered mode: every byte passes through the
  /// bufferevent, so its rate limits, filters and watermarks keep working.
  ///
  /// Ownership: once this returns, the bufferevent is Twine's, refused or not: Twine
  /// replaces its callbacks, enables it, delivers what already waits in its input, keeps
  /// what waits in its output queued ahead of the protocol's writes, and frees it
  /// (`bufferevent_free`) when the connection ends; the socket closes with it if the host
  /// made it with `BEV_OPT_CLOSE_ON_FREE` (otherwise the socket stays the host's to close).
  /// The caller must not use or free the bufferevent any more. When this throws, nothing
  /// was done and the bufferevent is still the caller's. Returns the transport, or nil
  /// when `factory` refused the peer (the bufferevent is then already freed, counted as refused).
  /// A bufferevent whose socket a Twine connection owns already throws
  /// ``TwineError/cannotAdopt(fd:cause:)`` with cause `EBUSY`.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown``; the bufferevent is still the caller's.
  @discardableResult
  public func adoptBufferevent(_ bufferevent: OpaquePointer, factory: Factory) throws(TwineError)
    -> (any Transport)?
  {
    try admit("adoptBufferevent")
    guard bufferevent_get_base(bufferevent) == base else {
      throw .cannotAdoptBufferevent("it belongs to another event_base")
    }
    let fd = bufferevent_getfd(bufferevent)
    guard fd >= 0 else { throw .cannotAdoptBufferevent("it has no socket") }
    try claimForAdoption(fd)
    defer { DescriptorClaims.release(fd) }  // the connection's own claim (ConnectionList) holds it from here
    let peer: SocketAddress
    do throws(SocketError) {
      peer = try Syscall.peerAddress(fd)
    } catch {
      throw .cannotAdoptBufferevent("its socket is not connected: \(error.message)")
    }
    guard let proto = factory.buildProtocol(peer) else {
      factory.counters.noteRefused()
      bufferevent_free(bufferevent)
      return nil
    }
    bufferevent_enable(bufferevent, Int16(EV_WRITE))
    let connection = TCPConnection(
      reactor: self, fd: fd, bev: bufferevent, factory: factory, peer: peer, connector: nil,
      buffered: true)
    connection.start(with: proto)
    return connection
  }

  /// Claims `fd` for a connection of this reactor; throws `EBUSY` when Twine owns it already.
  /// From now on this reactor's connections claim their fds (so a second adoption is refused).
  private func claimForAdoption(_ fd: Int32) throws(TwineError) {
    if !connections.claimsDescriptors { connections.claimsDescriptors = true }
    guard fd >= 0, DescriptorClaims.claimIfFree(fd) else {
      throw .cannotAdopt(fd: fd, cause: fd < 0 ? .from(code: EBADF) : .from(code: EBUSY))
    }
  }
}
