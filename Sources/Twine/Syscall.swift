import CLibevent
import Glibc

/// The socket system calls Twine makes, one small wrapper each (SwiftNIO's `System.swift`
/// is the model). Each reads `errno` right after its call and throws it as a ``SocketError``,
/// so no other call can overwrite it first. `EINTR` is retried (never for `close`).
///
/// The calls a connection makes per read or write (`recv`, `send`, `recvFrom`, `sendTo`,
/// `accept`) return nil for `EAGAIN`/`EWOULDBLOCK` instead of throwing: that is the normal
/// end of a read loop, and it costs no error value. None of them allocates.
enum Syscall {
  /// A socket's type. (Glibc's own `__socket_type` stays out of Twine's interface: a test
  /// that imports Twine would otherwise meet `SOCK_STREAM` through the wrong C module.)
  enum SocketType {
    case stream, datagram
  }

  /// The one place a socket is made: always `SOCK_NONBLOCK | SOCK_CLOEXEC`.
  static func socket(_ family: Int32, _ type: SocketType, protocol: Int32 = 0) throws(SocketError) -> Int32 {
    let kind = type == .stream ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue
    let flags = Int32(kind | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
    let fd = Glibc.socket(family, flags, `protocol`)
    guard fd >= 0 else { throw .from(code: errno) }
    return fd
  }

  /// `bind(2)` to `address`.
  static func bind(_ fd: Int32, _ address: NumericAddress) throws(SocketError) {
    var address = address
    let code = address.withSockaddr { Glibc.bind(fd, $0, $1) == 0 ? 0 : errno }
    guard code == 0 else { throw .from(code: code) }
  }

  /// `listen(2)`.
  static func listen(_ fd: Int32, backlog: Int32) throws(SocketError) {
    guard Glibc.listen(fd, backlog) == 0 else { throw .from(code: errno) }
  }

  /// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new socket, or nil when none is waiting.
  /// `address` and `length` may be nil; `length` is in-out, as for the system call.
  static func accept(
    _ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>? = nil, _ length: UnsafeMutablePointer<socklen_t>? = nil
  ) throws(SocketError) -> Int32? {
    while true {
      let made = twine_accept4(fd, address, length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
      if made >= 0 { return made }
      let code = errno
      switch code {
      case EINTR: continue
      case EAGAIN, EWOULDBLOCK: return nil
      default: throw .from(code: code)
      }
    }
  }

  /// `connect(2)`: true when connected at once, false when it goes on in the background
  /// (`EINPROGRESS`: wait for the socket to be writable, then read `SO_ERROR`).
  @discardableResult
  static func connect(_ fd: Int32, _ address: NumericAddress) throws(SocketError) -> Bool {
    var address = address
    let code = address.withSockaddr { Glibc.connect(fd, $0, $1) == 0 ? 0 : errno }
    guard code != 0 else { return true }
    // EINTR: the connect goes on, like EINPROGRESS (retrying it would fail with EALREADY).
    guard code == EINPROGRESS || code == EINTR else { throw .from(code: code) }
    return false
  }

  /// The one place a socket option is set: `setsockopt(2)` with `value`'s bytes
  /// (an `Int32` flag, an `ip_mreq`, ...).
  static func setOption<Value>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Value) throws(SocketError) {
    let code = withUnsafeBytes(of: value) {
      Glibc.setsockopt(fd, level, name, $0.baseAddress, socklen_t($0.count)) == 0 ? 0 : errno
    }
    guard code == 0 else { throw .from(code: code) }
  }

  /// A boolean socket option (`TCP_NODELAY`, `SO_KEEPALIVE`, `SO_REUSEADDR`) as the `Int32` 0 or 1 the kernel wants.
  static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ enabled: Bool) throws(SocketError) {
    try setOption(fd, level, name, Int32(enabled ? 1 : 0))
  }

  /// `getsockopt(2)` into `value`; returns how many bytes the kernel wrote.
  @discardableResult
  static func getOption<Value>(_ fd: Int32, _ level: Int32, _ name: Int32, into value: inout Value) throws(SocketError)
    -> Int
  {
    var length = socklen_t(MemoryLayout<Value>.size)
    let code = withUnsafeMutableBytes(of: &value) {
      Glibc.getsockopt(fd, level, name, $0.baseAddress, &length) == 0 ? 0 : errno
    }
    guard code == 0 else { throw .from(code: code) }
    return Int(length)
  }

  /// The local address of `fd` (`getsockname(2)`); `EAFNOSUPPORT` for a family Twine does not know.
  static func localAddress(_ fd: Int32) throws(SocketError) -> SocketAddress {
    try address(fd, peer: false)
  }

  /// The peer's address of `fd` (`getpeername(2)`); `ENOTCONN` when not connected.
  static func peerAddress(_ fd: Int32) throws(SocketError) -> SocketAddress {
    try address(fd, peer: true)
  }

  private static func address(_ fd: Int32, peer: Bool) throws(SocketError) -> SocketAddress {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let (rc, code, found) = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
        let rc = peer ? Glibc.getpeername(fd, sa, &length) : Glibc.getsockname(fd, sa, &length)
        let code = rc == 0 ? 0 : errno
        return (rc, code, rc == 0 ? SocketAddress(sa, length: Int(length)) : nil)
      }
    }
    guard rc == 0 else { throw .from(code: code) }
    guard let found else { throw .from(code: EAFNOSUPPORT) }
    return found
  }

  /// `shutdown(2)`; `how` is `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
  static func shutdown(_ fd: Int32, _ how: Int) throws(SocketError) {
    guard Glibc.shutdown(fd, Int32(how)) == 0 else { throw .from(code: errno) }
  }

  /// `close(2)`. Never retried: on Linux the descriptor is gone even when it reports `EINTR`.
  static func close(_ fd: Int32) throws(SocketError) {
    guard Glibc.close(fd) == 0 else { throw .from(code: errno) }
  }

  /// Makes `fd` non-blocking (`fcntl` `O_NONBLOCK`), for a socket someone else made.
  static func setNonBlocking(_ fd: Int32) throws(SocketError) {
    let flags = fcntl(fd, F_GETFL)
    guard flags >= 0, flags & O_NONBLOCK != 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
      throw .from(code: errno)
    }
  }

  /// `recv(2)` into `buffer`: the bytes read (0 at end of stream), or nil when none are waiting.
  @inline(__always)
  static func recv(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) throws(SocketError) -> Int? {
    while true {
      let got = Glibc.recv(fd, buffer.baseAddress, buffer.count, flags)
      if got >= 0 { return got }
      let code = errno
      if code == EINTR { continue }
      if code == EAGAIN || code == EWOULDBLOCK { return nil }
      throw .from(code: code)
    }
  }

  /// `send(2)` of `bytes`: how many the kernel took, or nil when it took none (its buffer is full).
  /// A connection sends with `MSG_NOSIGNAL | MSG_DONTWAIT`.
  @inline(__always)
  static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32 = Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
    throws(SocketError) -> Int?
  {
    while true {
      let sent = Glibc.send(fd, bytes.baseAddress, bytes.count, flags)
      if sent >= 0 { return sent }
      let code = errno
      if code == EINTR { continue }
      if code == EAGAIN || code == EWOULDBLOCK { return nil }
      throw .from(code: code)
    }
  }

  /// `recvfrom(2)`: one datagram into `buffer` and its sender into `address` (`length` in-out),
  /// or nil when none is waiting. With `MSG_TRUNC` the result is the datagram's real size.
  @inline(__always)
  static func recvFrom(
    _ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0,
    _ address: UnsafeMutablePointer<sockaddr>, _ length: inout socklen_t
  ) throws(SocketError) -> Int? {
    while true {
      let got = Glibc.recvfrom(fd, buffer.baseAddress, buffer.count, flags, address, &length)
      if got >= 0 { return got }
      let code = errno
      if code == EINTR { continue }
      if code == EAGAIN || code == EWOULDBLOCK { return nil }
      throw .from(code: code)
    }
  }

  /// `sendto(2)`: one datagram to `address`; how many bytes went, or nil when the socket's buffer is full.
  @inline(__always)
  static func sendTo(
    _ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32 = Int32(MSG_NOSIGNAL), to address: NumericAddress
  ) throws(SocketError) -> Int? {
    var address = address
    while true {
      let (sent, code) = address.withSockaddr { sa, length in
        let sent = Glibc.sendto(fd, bytes.baseAddress, bytes.count, flags, sa, length)
        return (sent, sent >= 0 ? 0 : errno)
      }
      if sent >= 0 { return sent }
      if code == EINTR { continue }
      if code == EAGAIN || code == EWOULDBLOCK { return nil }
      throw .from(code: code)
    }
  }
}
