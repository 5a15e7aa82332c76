import CLibevent
import Glibc

/// Listening on a socket the host (or a supervisor: systemd, a hot-restart parent) already bound.
extension Reactor {
  /// Serves each connection accepted on `fd`, a bound TCP or UNIX-domain stream socket,
  /// with a protocol from `factory`, exactly like ``listenTCP(_:factory:backlog:interface:)``.
  /// A socket not listening yet is put in listening mode with `backlog`; it is made
  /// non-blocking and close-on-exec.
  ///
  /// Ownership: once this returns, the socket is Twine's: ``ListeningPort/stopListening()``
  /// (or ``shutdown()``) closes it. When this throws, nothing was done and it is still the
  /// caller's. Throws ``TwineError/cannotAdopt(fd:cause:)`` when `fd` is not a bound stream
  /// socket (cause `EBADF`, `ENOTSOCK`, `EPROTOTYPE`, `EINVAL` for an unbound one), and with
  /// cause `EBUSY` when a Twine connection owns `fd`; ``TwineError/reactorShutDown`` after ``shutdown()``.
  @discardableResult
  public func listen(onSocket fd: Int32, factory: Factory, backlog: Int = 511) throws(TwineError) -> ListeningPort {
    try admit("listen(onSocket:)")
    guard !DescriptorClaims.isClaimed(fd) else { throw .cannotAdopt(fd: fd, cause: .from(code: EBUSY)) }
    let address: SocketAddress
    do throws(SocketError) {
      var type: Int32 = 0
      try Syscall.getOption(fd, SOL_SOCKET, SO_TYPE, into: &type)  // EBADF, ENOTSOCK
      guard type == Int32(SOCK_STREAM.rawValue) else { throw .from(code: EPROTOTYPE) }
      address = try Syscall.localAddress(fd)
      if case .unix = address.kind {} else if address.port == 0 { throw .from(code: EINVAL) }  // never bound
      var listening: Int32 = 0
      try Syscall.getOption(fd, SOL_SOCKET, SO_ACCEPTCONN, into: &listening)
      if listening == 0 { try Syscall.listen(fd, backlog: Int32(backlog)) }
      try Syscall.setNonBlocking(fd)
    } catch {
      throw .cannotAdopt(fd: fd, cause: error)
    }
    _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    guard let made = ListeningPort.listener(reactor: self, fd: fd) else { throw .libevent("evconnlistener_new") }
    return ListeningPort(reactor: self, listener: made, address: address, factory: factory, socketFile: nil)
  }
}
