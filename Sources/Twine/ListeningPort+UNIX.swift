import CLibevent
import Glibc

/// A UNIX-domain socket file a ``ListeningPort`` made: removed when the port stops,
/// unless something else has replaced it meanwhile (its device and inode differ).
struct SocketFile {
  let path: String
  let device: UInt
  let inode: UInt
}

extension ListeningPort {
  /// Listens on the UNIX-domain stream socket `path`, with file permissions `mode`.
  ///
  /// An existing file at `path` is handled as Twisted and most servers do, but safely:
  /// a socket nobody accepts on (left by a dead server: `ECONNREFUSED`) is removed and
  /// replaced; a socket a live server accepts on, or a file that is not a socket, is
  /// left alone and the call throws.
  convenience init(reactor: Reactor, path: String, mode: mode_t, backlog: Int, factory: Factory) throws(TwineError) {
    guard var address = NumericAddress(SocketAddress(.unix(path: path), port: 0)) else {
      throw .cannotListenOnPath(path, cause: SocketError(code: ENAMETOOLONG, message: "not a usable socket path"))
    }
    try Self.clearStaleSocket(path, &address)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw .cannotListenOnPath(path, cause: .current()) }
    if address.withSockaddr({ bind(fd, $0, $1) }) != 0 {
      let cause = SocketError.current()
      close(fd)
      throw .cannotListenOnPath(path, cause: cause)
    }
    // The file exists from bind on, with the umask's mode; nobody can connect before
    // listen, so setting the mode here leaves no window.
    var info = stat()
    guard chmod(path, mode) == 0, lstat(path, &info) == 0 else {
      let cause = SocketError.current()
      close(fd)
      unlink(path)
      throw .cannotListenOnPath(path, cause: cause)
    }
    let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED)
    guard let made = evconnlistener_new(reactor.base, nil, nil, flags, Int32(backlog), fd) else {
      let cause = SocketError.current()
      close(fd)
      unlink(path)
      throw .cannotListenOnPath(path, cause: cause)
    }
    let file = SocketFile(path: path, device: UInt(info.st_dev), inode: UInt(info.st_ino))
    self.init(
      reactor: reactor, listener: made, address: SocketAddress(.unix(path: path), port: 0), factory: factory,
      socketFile: file)
  }

  /// Makes way for a new socket at `path`: nothing there, or a dead server's socket
  /// (removed). A live server's socket or a file that is not a socket throws, untouched.
  private static func clearStaleSocket(_ path: String, _ address: inout NumericAddress) throws(TwineError) {
    var info = stat()
    guard lstat(path, &info) == 0 else {
      if errno == ENOENT { return }
      throw .cannotListenOnPath(path, cause: .current())
    }
    guard info.st_mode & S_IFMT == S_IFSOCK else {
      throw .cannotListenOnPath(path, cause: SocketError(code: EEXIST, message: "File exists and is not a socket"))
    }
    let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard probe >= 0 else { throw .cannotListenOnPath(path, cause: .current()) }
    let code = address.withSockaddr { connect(probe, $0, $1) } == 0 ? 0 : errno
    close(probe)
    switch code {
    case ECONNREFUSED:
      // A socket file nobody accepts on: a dead server's. Ours to replace.
      if unlink(path) != 0 && errno != ENOENT { throw .cannotListenOnPath(path, cause: .current()) }
    case 0, EAGAIN, EINPROGRESS:
      // Accepted, or a full backlog: a live server.
      throw .cannotListenOnPath(
        path,
        cause: SocketError(code: EADDRINUSE, message: "Address already in use (a server accepts connections there)"))
    default:
      throw .cannotListenOnPath(path, cause: .from(code: code))
    }
  }

  /// Removes the socket file if it is still the one this port made.
  static func removeSocketFile(_ file: SocketFile) {
    var info = stat()
    guard lstat(file.path, &info) == 0, UInt(info.st_dev) == file.device, UInt(info.st_ino) == file.inode else {
      return
    }
    unlink(file.path)
  }
}
