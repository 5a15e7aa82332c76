import CLibevent
import Glibc
import Synchronization

/// The listening sockets a supervisor passed to this process by systemd's protocol
/// (`sd_listen_fds`): `LISTEN_PID` names this process, `LISTEN_FDS` counts the sockets,
/// which start at fd 3, and `LISTEN_FDNAMES` names them (`FileDescriptorName=`), `:`-separated.
///
/// A `systemd:domain=INET:index=0` endpoint takes one of them; each can be taken once.
public enum SystemdSockets {
  /// The first passed descriptor (`SD_LISTEN_FDS_START`).
  public static let firstDescriptor: Int32 = 3

  /// Sockets already served, so that one is never served twice (two owners would close it twice).
  private static let taken = Mutex<Set<Int32>>([])

  /// The descriptors passed to this process, with their names (empty when none were
  /// given); an empty list when `LISTEN_PID` is missing or names another process.
  public static func passed() -> [(fd: Int32, name: String)] {
    guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), Int32(pidText) == getpid(),
      let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int32(countText), count > 0
    else { return [] }
    let names =
      getenv("LISTEN_FDNAMES").map { String(cString: $0).split(separator: ":", omittingEmptySubsequences: false) } ?? []
    return (0..<count).map { offset in
      (firstDescriptor + offset, Int(offset) < names.count ? String(names[Int(offset)]) : "")
    }
  }

  /// The descriptor `socket` names, checked to be a listening stream socket of `domain`
  /// and made close-on-exec; it is the caller's to serve from now on. Throws
  /// ``TwineError/badEndpoint(_:)`` naming what is missing or wrong.
  static func take(_ socket: ServerEndpoint.SystemdSocket, domain: ServerEndpoint.SystemdDomain) throws(TwineError)
    -> Int32
  {
    let sockets = passed()
    guard !sockets.isEmpty else {
      let pid = getenv("LISTEN_PID").map { String(cString: $0) }
      let why = pid == nil ? "LISTEN_PID is not set" : "LISTEN_PID (\(pid!)) is not this process (\(getpid()))"
      throw .badEndpoint("no sockets were passed by systemd (\(why), or LISTEN_FDS is not a count)")
    }
    let fd: Int32
    switch socket {
    case .index(let index):
      guard index < sockets.count else {
        throw .badEndpoint("systemd passed \(sockets.count) socket(s), so there is no index \(index)")
      }
      fd = sockets[index].fd
    case .name(let name):
      guard let found = sockets.first(where: { $0.name == name }) else {
        throw .badEndpoint("systemd passed no socket named \(name) (LISTEN_FDNAMES)")
      }
      fd = found.fd
    }
    do throws(SocketError) {
      var family: Int32 = 0
      var type: Int32 = 0
      var listening: Int32 = 0
      try Syscall.getOption(fd, SOL_SOCKET, SO_DOMAIN, into: &family)
      try Syscall.getOption(fd, SOL_SOCKET, SO_TYPE, into: &type)
      try Syscall.getOption(fd, SOL_SOCKET, SO_ACCEPTCONN, into: &listening)
      let expected: Int32 =
        switch domain {
        case .inet: AF_INET
        case .inet6: AF_INET6
        case .unix: AF_UNIX
        }
      guard family == expected else {
        throw SocketError(code: EAFNOSUPPORT, message: "fd \(fd) is not an \(domain.rawValue) socket")
      }
      guard type == Int32(SOCK_STREAM.rawValue), listening == 1 else {
        throw SocketError(code: EINVAL, message: "fd \(fd) is not a listening stream socket")
      }
    } catch {
      throw .badEndpoint("systemd socket \(fd): \(error.message)")
    }
    let fresh = taken.withLock { $0.insert(fd).inserted }
    guard fresh else { throw .badEndpoint("systemd socket \(fd) is already being served") }
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    return fd
  }
}
