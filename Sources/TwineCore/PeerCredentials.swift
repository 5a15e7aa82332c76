/// Who is at the other end of a UNIX-domain socket, as the kernel recorded it when the
/// connection was made (`SO_PEERCRED`): the peer process's id and its user and group ids.
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
  /// The peer's process id.
  public let pid: Int32
  /// The peer's effective user id.
  public let uid: UInt32
  /// The peer's effective group id.
  public let gid: UInt32

  /// Makes credentials from their three ids.
  public init(pid: Int32, uid: UInt32, gid: UInt32) {
    self.pid = pid
    self.uid = uid
    self.gid = gid
  }

  /// `pid=… uid=… gid=…`.
  public var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }
}

extension Transport {
  /// Nil: only transports over UNIX-domain sockets know their peer's credentials.
  public var peerCredentials: PeerCredentials? { nil }
}
