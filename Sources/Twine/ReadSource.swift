import CLibevent

/// How one connection reads: direct, through a persistent `EV_READ` event of its own
/// (one `recv` into the reactor's buffer per read), or buffered, through its
/// bufferevent's read side (the ``OutputQueue`` owns that bufferevent).
///
/// Owns the read event: made here, freed by ``free()`` or ``switchToBuffered()``, and
/// freed on drop if neither ran.
struct ReadSource: ~Copyable {
  private var event: OpaquePointer?
  /// Reads go through the bufferevent.
  private(set) var isBuffered: Bool

  /// A buffered source: the bufferevent reads.
  init(buffered: Void) {
    isBuffered = true
  }

  /// A direct source on `fd`, calling `callback(context)` when it is readable. Check
  /// ``isReady``: `event_new` can fail.
  init(base: OpaquePointer, fd: Int32, context: UnsafeMutableRawPointer, callback: event_callback_fn) {
    isBuffered = false
    event = event_new(base, fd, Int16(EV_READ | EV_PERSIST), callback, context)
  }

  /// False when the direct event could not be made.
  var isReady: Bool { isBuffered || event != nil }

  /// Adds (`true`) or removes the direct read interest; a buffered source does nothing here.
  /// False when libevent could not add it.
  func arm(_ on: Bool) -> Bool {
    guard let event else { return true }
    return (on ? event_add(event, nil) : event_del(event)) == 0
  }

  /// Runs the callback from the loop as if the socket were readable (bytes wait where epoll
  /// cannot see them: inside OpenSSL).
  func activate() {
    if let event { event_active(event, Int32(EV_READ), 0) }
  }

  /// From now on the bufferevent reads: the direct event is freed (allowed inside its own callback).
  mutating func switchToBuffered() {
    free()
    isBuffered = true
  }

  /// Frees the direct event, if any.
  mutating func free() {
    if let event { event_free(event) }
    event = nil
  }

  deinit {
    if let event { event_free(event) }
  }
}
