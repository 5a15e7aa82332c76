import CLibevent
import Glibc

/// Serving a listening socket someone else made: a supervisor (systemd's socket
/// activation), a predecessor process handing over its sockets, a host.
extension Reactor {
  /// Accepts connections on `fd`, a TCP (IPv4 or IPv6) or UNIX-domain stream socket that
  /// is already bound and listening, and serves each with a protocol from `factory`,
  /// exactly like a port from ``listenTCP(_:factory:backlog:interface:)`` (Twisted's
  /// `adoptStreamPort`). With `tls` (server options), every connection speaks TLS as on
  /// ``listenSSL(_:factory:tls:backlog:interface:)``.
  ///
  /// Ownership: once this returns, the descriptor is Twine's: ``ListeningPort/stopListening()``
  /// closes it (other descriptors of the same socket, in this process or another, keep
  /// listening). Twine never removes a UNIX-domain socket's file it did not make.
  /// When this throws, nothing was done: the descriptor is still the caller's, its flags unchanged.
  ///
  /// The socket is made non-blocking. Throws ``TwineError/cannotAdopt(fd:cause:)`` when
  /// `fd` is a connection Twine serves (`EBUSY`), not open (`EBADF`), not a socket (`ENOTSOCK`), not a stream socket
  /// (`EPROTOTYPE`), not listening (`EINVAL`), or of a family other than IPv4, IPv6 or
  /// UNIX (`EAFNOSUPPORT`); ``TwineError/tls(_:)`` when `tls` cannot be loaded; and
  /// ``TwineError/reactorShutDown`` after ``shutdown()``.
  ///
  /// ```swift
  /// // systemd passed one socket (LISTEN_FDS=1): it is fd 3.
  /// let port = try reactor.adoptListeningSocket(3, factory: Factory(Echo.self))
  /// print("listening on \(port.address)")
  /// ```
  @discardableResult
  public func adoptListeningSocket(_ fd: Int32, factory: Factory, tls: TLSOptions? = nil) throws(TwineError)
    -> ListeningPort
  {
    try admit("adoptListeningSocket")
    guard !DescriptorClaims.isClaimed(fd) else { throw .cannotAdopt(fd: fd, cause: .from(code: EBUSY)) }
    let address: SocketAddress
    do throws(SocketError) {
      address = try Self.checkListening(fd)
    } catch {
      throw .cannotAdopt(fd: fd, cause: error)
    }
    var setup: TLSSetup?
    if let tls {
      guard tls.role == .server else { throw .tls("adoptListeningSocket needs server options (TLSOptions.server)") }
      setup = TLSSetup(context: try tlsContext(for: tls), options: tls)
    }
    let flags = fcntl(fd, F_GETFL)
    do throws(SocketError) {
      try Syscall.setNonBlocking(fd)
    } catch {
      throw .cannotAdopt(fd: fd, cause: error)
    }
    let options = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED)
    guard let listener = evconnlistener_new(base, nil, nil, options, 0, fd) else {
      _ = fcntl(fd, F_SETFL, flags)  // still the caller's: as it was
      throw .cannotAdopt(fd: fd, cause: .from(code: ENOMEM))
    }
    return ListeningPort(
      reactor: self, listener: listener, address: address, factory: factory, socketFile: nil, tls: setup)
  }

  /// The local address of `fd` if it is a listening IPv4, IPv6 or UNIX-domain stream socket;
  /// otherwise throws the errno that says what it is not. Reads only: `fd` is left as it is.
  static func checkListening(_ fd: Int32) throws(SocketError) -> SocketAddress {
    var type: Int32 = 0
    try Syscall.getOption(fd, SOL_SOCKET, SO_TYPE, into: &type)  // EBADF, ENOTSOCK
    guard type == Int32(SOCK_STREAM.rawValue) else {
      throw SocketError(code: EPROTOTYPE, message: "not a stream socket (SOCK_STREAM)")
    }
    var domain: Int32 = 0
    try Syscall.getOption(fd, SOL_SOCKET, SO_DOMAIN, into: &domain)
    guard domain == AF_INET || domain == AF_INET6 || domain == AF_UNIX else {
      throw SocketError(code: EAFNOSUPPORT, message: "not a TCP or UNIX-domain socket (family \(domain))")
    }
    var listening: Int32 = 0
    try Syscall.getOption(fd, SOL_SOCKET, SO_ACCEPTCONN, into: &listening)
    guard listening != 0 else {
      throw SocketError(code: EINVAL, message: "not a listening socket (listen(2) was not called on it)")
    }
    return try Syscall.localAddress(fd)
  }
}
