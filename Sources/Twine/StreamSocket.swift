import CLibevent

/// One connected stream socket, owned: its fd is closed exactly once, when this value
/// goes, unless ``release()`` handed it to a new owner (a bufferevent made with
/// `BEV_OPT_CLOSE_ON_FREE`). Noncopyable, so a second close cannot be written.
struct StreamSocket: ~Copyable {
  /// The socket's number (valid while this value or its new owner holds it).
  let fd: Int32

  /// Takes ownership of `fd`.
  init(fd: Int32) { self.fd = fd }

  /// Hands the fd to a new owner, which closes it; this value no longer will.
  consuming func release() -> Int32 {
    let fd = self.fd
    discard self
    return fd
  }

  deinit { try? Syscall.close(fd) }

  /// Ends a graceful close with FIN, never RST (Twisted shuts the socket down before it
  /// closes it): shuts the write side of `fd` — the peer reads all we sent, then end of
  /// stream — and reads and discards, into `scratch`, up to `limit` bytes the peer sent that
  /// no one read. (Linux answers a close with unread input by RST, and a peer that gets RST
  /// may lose the bytes we sent last, a greeting or a refusal, before it reads them.)
  static func shutWriteAndDiscardInput(_ fd: Int32, scratch: UnsafeMutableRawBufferPointer, limit: Int = 1 << 20) {
    try? Syscall.shutdown(fd, Int(SHUT_WR))
    var discarded = 0
    while discarded < limit {
      guard let got = try? Syscall.recv(fd, scratch), got > 0 else { return }
      discarded += got
    }
  }
}
