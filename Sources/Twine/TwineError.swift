import CLibevent
import Glibc

/// Errors the reactor throws, each with its cause.
public enum TwineError: Error, Sendable, CustomStringConvertible {
  /// Binding or listening failed, e.g. the port is in use (`EADDRINUSE`).
  case cannotListen(interface: String, port: Int, cause: SocketError)
  /// Listening on a UNIX-domain socket path failed, e.g. a live server holds it or the path is not a socket.
  case cannotListenOnPath(String, cause: SocketError)
  /// An interface or host was not a numeric IPv4 or IPv6 address.
  case badAddress(String)
  /// libevent could not make an object (event base, event, bufferevent); the text names it.
  case libevent(String)
  /// The reactor has shut down: it makes no new ports, connections or timers.
  case reactorShutDown
  /// A TLS context could not be made from its options (a file missing or not PEM, a key
  /// that does not match its certificate, server options used to connect); the text says which.
  case tls(String)
  /// Not allowed on a reactor over a host's `event_base`; the text says what was asked.
  case borrowedBase(String)
  /// A socket could not be adopted (not open, not a connected stream socket); the caller still owns it.
  case cannotAdopt(fd: Int32, cause: SocketError)
  /// A bufferevent could not be adopted; the text says why. The caller still owns it.
  case cannotAdoptBufferevent(String)
  /// Taking over a running server's listening sockets failed (its control socket cannot
  /// be reached or answered with an error, a socket could not be served); the text says
  /// which. Nothing was taken over: the old server keeps serving.
  case takeover(String)
  /// An endpoint cannot be served as asked (a UDP endpoint given a factory, a systemd socket
  /// that was not passed); the text says why.
  case badEndpoint(String)

  /// A one-line message for users, cause included.
  public var description: String {
    switch self {
    case .cannotListen(let interface, let port, let cause):
      let shown = interface.isEmpty ? "*" : interface
      return "cannot listen on \(shown):\(port): \(cause.message)"
    case .cannotListenOnPath(let path, let cause): return "cannot listen on \(path): \(cause.message)"
    case .badAddress(let text): return "not a numeric IP address: \(text)"
    case .libevent(let what): return "libevent failed: \(what)"
    case .reactorShutDown: return "the reactor has shut down"
    case .tls(let why): return "TLS setup failed: \(why)"
    case .borrowedBase(let what): return "not allowed on a reactor over a host's event_base: \(what)"
    case .cannotAdopt(let fd, let cause): return "cannot adopt fd \(fd): \(cause.message)"
    case .cannotAdoptBufferevent(let why): return "cannot adopt the bufferevent: \(why)"
    case .takeover(let why): return "takeover failed: \(why)"
    case .badEndpoint(let why): return "cannot serve the endpoint: \(why)"
    }
  }
}

extension SocketError {
  /// The error for errno value `code`, with libevent's text for it.
  static func from(code: Int32) -> SocketError {
    SocketError(code: code, message: String(cString: strerror(code)))
  }

  /// The error of the last failed socket call on this thread.
  static func current() -> SocketError { from(code: twine_socket_error()) }
}

extension CloseReason {
  /// The reason a socket error ends a connection with.
  static func fromSocketError(_ code: Int32) -> CloseReason {
    switch code {
    case ECONNRESET, EPIPE: .reset
    case ETIMEDOUT: .timedOut
    case ECONNREFUSED: .connectionRefused
    default: .error(SocketError.from(code: code))
    }
  }
}
