/// The TLS handshakes in progress on one port, against a limit. A handshake holds a
/// socket, an `SSL` and its buffers (about 47 KiB) before any protocol exists, so without
/// a bound 2,000 silent connects against a limit of 10 connections cost 94 MiB until
/// their deadline. Past the limit a new connection is closed at once.
final class HandshakeBudget {
  /// Handshakes allowed at once.
  var limit: Int
  /// Handshakes in progress now.
  private(set) var inProgress = 0
  /// Connections closed because the budget was spent.
  private(set) var refused = 0
  /// Handshakes that failed (their connection closed before it got a protocol).
  private(set) var failed = 0

  init(limit: Int) { self.limit = limit }

  /// Takes a slot for a new handshake; false (counted as refused) when none is free.
  func take() -> Bool {
    guard inProgress < limit else {
      refused += 1
      return false
    }
    inProgress += 1
    return true
  }

  /// A handshake failed (counted here; its slot is released by ``release()``).
  func noteFailed() { failed += 1 }

  /// A handshake ended (done, failed, or its connection closed).
  func release() { inProgress -= 1 }
}
