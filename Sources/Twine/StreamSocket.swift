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
}
