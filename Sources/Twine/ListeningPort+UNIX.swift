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
    guard let address = NumericAddress(SocketAddress(.unix(path: path), port: 0)) else {
      throw .cannotListenOnPath(path, cause: SocketError(code: ENAMETOOLONG, message: "not a usable socket path"))
    }
    try Self.clearStaleSocket(path, address)
    let fd: Int32
    do throws(SocketError) {
      fd = try Syscall.socket(AF_UNIX, .stream)
    } catch {
      throw .cannotListenOnPath(path, cause: error)
    }
    do throws(SocketError) {
      try Syscall.bind(fd, address)
    } catch {
      try? Syscall.close(fd)
      throw .cannotListenOnPath(path, cause: error)
    }
    // The file exists from bind on, with the umask's mode; nobody can connect before
    // listen, so setting the mode here leaves no window.
    var info = stat()
    do throws(SocketError) {
      guard chmod(path, mode) == 0, lstat(path, &info) == 0 else { throw .current() }
      try Syscall.listen(fd, backlog: Int32(backlog))
    } catch {
      try? Syscall.close(fd)
      unlink(path)
      throw .cannotListenOnPath(path, cause: error)
    }
    guard let made = Self.listener(reactor: reactor, fd: fd) else {
      unlink(path)
      throw .cannotListenOnPath(path, cause: .from(code: ENOMEM))
    }
    let file = SocketFile(path: path, device: UInt(info.st_dev), inode: UInt(info.st_ino))
    self.init(
      reactor: reactor, listener: made, address: SocketAddress(.unix(path: path), port: 0), factory: factory,
      socketFile: file)
  }

  /// Makes way for a new socket at `path`: nothing there, or a dead server's socket
  /// (removed). A live server's socket or a file that is not a socket throws, untouched.
  private static func clearStaleSocket(_ path: String, _ address: NumericAddress) throws(TwineError) {
    var info = stat()
    guard lstat(path, &info) == 0 else {
      if errno == ENOENT { return }
      throw .cannotListenOnPath(path, cause: .current())
    }
    guard info.st_mode & S_IFMT == S_IFSOCK else {
      throw .cannotListenOnPath(path, cause: SocketError(code: EEXIST, message: "File exists and is not a socket"))
    }
    let code: Int32
    do throws(SocketError) {
      let probe = try Syscall.socket(AF_UNIX, .stream)
      defer { try? Syscall.close(probe) }
      do throws(SocketError) {
        try Syscall.connect(probe, address)
        code = 0
      } catch {
        code = error.code
      }
    } catch {
      throw .cannotListenOnPath(path, cause: error)
    }
    switch code {
    case ECONNREFUSED:
      // A socket file nobody accepts on: a dead server's. Ours to replace.
      if unlink(path) != 0 && errno != ENOENT { throw .cannotListenOnPath(path, cause: .current()) }
    case 0, EAGAIN:
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
