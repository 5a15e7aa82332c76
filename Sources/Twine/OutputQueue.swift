import CLibevent

/// One connection's output queue: the bufferevent that holds what the kernel did not
/// take at once, and the socket until that bufferevent takes it over.
///
/// Ownership, in one place: the socket is a ``StreamSocket`` here until
/// ``makeBufferevent(base:)`` hands it to the bufferevent (`BEV_OPT_CLOSE_ON_FREE`);
/// from then on freeing the bufferevent closes it. The rate-limit configuration a
/// connection sets is owned here too, and freed after the bufferevent lets go of it.
/// ``free(flush:beforeFree:)`` is the one free; a queue dropped without it frees what it holds.
struct OutputQueue: ~Copyable {
  /// The bufferevent, once made (or adopted); nil while every write went straight out.
  private(set) var bufferevent: OpaquePointer?
  /// The socket, until the bufferevent takes it.
  private var socket: StreamSocket?
  /// This connection's own token buckets; libevent keeps the pointer, so it lives until the free.
  private var rateLimitConfig: OpaquePointer?

  /// A queue for `socket` with no bufferevent yet.
  init(socket: consuming StreamSocket) {
    self.socket = .some(socket)
  }

  /// A queue that is `bufferevent` (which already owns its socket, or is a host's).
  init(bufferevent: OpaquePointer) {
    self.bufferevent = bufferevent
  }

  /// Bytes queued and not yet handed to the kernel.
  var length: Int {
    guard let bufferevent else { return 0 }
    return evbuffer_get_length(bufferevent_get_output(bufferevent))
  }

  /// Makes the bufferevent on `base`, which takes the socket; nil (the socket still
  /// owned here) if libevent cannot. Returns the existing one if there is one.
  mutating func makeBufferevent(base: OpaquePointer) -> OpaquePointer? {
    if let bufferevent { return bufferevent }
    guard let fd = socket?.fd,
      let made = bufferevent_socket_new(base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))
    else { return nil }
    _ = socket.take()?.release()
    bufferevent = made
    return made
  }

  /// A bufferevent that took over the socket (`BEV_OPT_CLOSE_ON_FREE`) becomes the queue:
  /// the socket is its from now on.
  mutating func adoptBufferevent(_ made: OpaquePointer) {
    _ = socket.take()?.release()
    bufferevent = made
  }

  /// `startTLS`: `filter` (which now owns the old bufferevent) takes its place; a rate
  /// limit set before moves to it, so the plain bufferevent below keeps no pointer to it.
  mutating func replaceBufferevent(with filter: OpaquePointer) {
    if let rateLimitConfig, let plain = bufferevent {
      bufferevent_set_rate_limit(plain, nil)
      bufferevent_set_rate_limit(filter, rateLimitConfig)
    }
    bufferevent = filter
  }

  /// Queues `count` bytes at `bytes`; false when they could not be (no bufferevent, or
  /// libevent could not allocate): the stream has lost bytes and must end.
  func enqueue(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
    guard let bufferevent else { return false }
    return bufferevent_write(bufferevent, bytes, count) == 0
  }

  /// Makes the write callback fire when the queue drains to `lowWater` (nil: when it is empty).
  func watchDrain(to lowWater: Int?) {
    guard let bufferevent else { return }
    bufferevent_setwatermark(bufferevent, Int16(EV_WRITE), lowWater ?? 0, 0)
  }

  /// Sets this connection's own limit (nil lifts it), freeing the configuration it replaces.
  mutating func setRateLimit(_ limit: RateLimit?) {
    guard let bufferevent else { return }
    let old = rateLimitConfig
    rateLimitConfig = limit.flatMap(TokenBuckets.config)
    bufferevent_set_rate_limit(bufferevent, rateLimitConfig)
    if let old { ev_token_bucket_cfg_free(old) }
  }

  /// Best effort, for shutdown: hands the kernel what is queued on `fd`, without waiting.
  func flushOnce(fd: Int32) {
    guard let bufferevent else { return }
    let output = bufferevent_get_output(bufferevent)!
    // libevent freezes the start of a socket bufferevent's output (it thaws it around its
    // own writes): frozen, evbuffer_write fails at once and nothing would leave.
    evbuffer_unfreeze(output, 1)
    defer { evbuffer_freeze(output, 1) }
    while evbuffer_get_length(output) > 0 {
      guard evbuffer_write(output, fd) > 0 else { return }
    }
  }

  /// The one free: runs `beforeFree` with the bufferevent (last words such as
  /// close_notify), frees it (closing the socket), or closes the socket if there is no
  /// bufferevent. Queued bytes are discarded. Idempotent.
  mutating func free(beforeFree: (OpaquePointer) -> Void = { _ in }) {
    if let bufferevent {
      // bufferevent_free only drops a reference: libevent may still use the bufferevent
      // (and read its rate-limit configuration) after our callback returns. Detach the
      // configuration first, so it can be freed below.
      if rateLimitConfig != nil { bufferevent_set_rate_limit(bufferevent, nil) }
      beforeFree(bufferevent)
      bufferevent_free(bufferevent)  // clears the callbacks first, closes the socket
      self.bufferevent = nil
    }
    socket = nil  // closes it, if no bufferevent took it
    if let rateLimitConfig { ev_token_bucket_cfg_free(rateLimitConfig) }
    rateLimitConfig = nil
  }

  deinit {
    if let bufferevent {
      if rateLimitConfig != nil { bufferevent_set_rate_limit(bufferevent, nil) }
      bufferevent_free(bufferevent)
    }
    if let rateLimitConfig { ev_token_bucket_cfg_free(rateLimitConfig) }
  }
}
