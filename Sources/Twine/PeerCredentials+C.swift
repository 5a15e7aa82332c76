import CLibevent
import Glibc

extension PeerCredentials {
  /// The credentials of the peer of UNIX-domain socket `fd` (`SO_PEERCRED`); nil for
  /// other sockets (where Linux answers with placeholder ids) or on error.
  static func of(fd: Int32) -> PeerCredentials? {
    guard case .unix? = SocketAddress.of(fd: fd, peer: false)?.kind else { return nil }
    // `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`: Swift sees it only under
    // _GNU_SOURCE, so read its three 32-bit fields directly.
    var credentials: (pid: UInt32, uid: UInt32, gid: UInt32) = (0, 0, 0)
    guard let length = try? Syscall.getOption(fd, SOL_SOCKET, SO_PEERCRED, into: &credentials), length == 12 else {
      return nil
    }
    return PeerCredentials(pid: Int32(bitPattern: credentials.pid), uid: credentials.uid, gid: credentials.gid)
  }
}
