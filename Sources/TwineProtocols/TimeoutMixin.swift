import TwineCore

/// An idle timeout for any protocol (Twisted's `policies.TimeoutMixin`): the connection is
/// dropped when nothing resets the timeout for the given number of seconds.
///
/// ```swift
/// final class Chatty: LineReceiver, TimeoutMixin {
///   let idleTimer = IdleTimer()
///   override func connectionMade() { setTimeout(300) }
///   override func dataReceived(_ data: RawSpan) {
///     resetTimeout()
///     super.dataReceived(data)
///   }
/// }
/// ```
///
/// The timeout runs on `transport.scheduler` (the reactor, or the `ManualClock` of a
/// `StringTransport`). It never fires after `connectionLost` and never keeps a protocol
/// alive; `setTimeout(nil)` in `connectionLost` releases the timer at once rather than
/// when it would have fired.
///
/// To act differently on a timeout, implement ``timeoutConnection()`` in the class that
/// declares the conformance (a protocol extension's default is not a class method: a
/// subclass's version would not be called).
public protocol TimeoutMixin: Protocol {
  /// The timer's state; declare it as `let idleTimer = IdleTimer()`.
  var idleTimer: IdleTimer { get }

  /// The timeout expired. The default closes the connection: with
  /// `loseConnection(reason: .timedOut)` when nothing is queued for the peer (the close is
  /// immediate and `connectionLost` gets `.timedOut`), or with `abortConnection()` when
  /// output is still queued, because a peer that has been silent for the whole timeout with
  /// our bytes unread may never read them, and a graceful close would wait for it forever.
  func timeoutConnection()
}

extension TimeoutMixin {
  /// The timeout in seconds, or nil when off.
  public var timeout: Double? { idleTimer.period }

  /// Starts the timeout: ``timeoutConnection()`` runs after `seconds` without
  /// ``resetTimeout()``. A new value replaces the old, counted from now; nil turns it off.
  /// Call it from `connectionMade` or later.
  public func setTimeout(_ seconds: Double?) {
    idleTimer.set(seconds, for: self)
  }

  /// Starts the countdown again from now (call it when the peer shows life, e.g. on each
  /// read). Does nothing when the timeout is off or has fired.
  public func resetTimeout() {
    idleTimer.reset()
  }

  /// Closes the connection: `loseConnection(reason: .timedOut)`, or `abortConnection()`
  /// when output is still queued (see ``TimeoutMixin/timeoutConnection()``).
  public func timeoutConnection() {
    if transport.pendingWriteCount == 0 {
      transport.loseConnection(reason: .timedOut)
    } else {
      transport.abortConnection()
    }
  }
}
