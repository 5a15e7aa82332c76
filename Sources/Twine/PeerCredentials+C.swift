import CLibevent
import Glibc

extension PeerCredentials {
  /// The credentials of the peer of UNIX-domain socket `fd` (`SO_PEERCRED`); nil for
  /// other sockets (where Linux answers with placeholder ids) or on error.
  static func of(fd: Int32) -> PeerCredentials? {
    guard case .unix? = SocketAddress.of(fd: fd, peer: false)?.kind else { return nil }
    // `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`: Swift sees it only under
    // _GNU_SOURCE, so read its three 32-bit fields directly.
    var credentials: [UInt32] = [0, 0, 0]
    var length = socklen_t(12)
    let rc = credentials.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, SO_PEERCRED, $0.baseAddress, &length) }
    guard rc == 0, length == 12 else { return nil }
    return PeerCredentials(pid: Int32(bitPattern: credentials[0]), uid: credentials[1], gid: credentials[2])
  }
}
