/// Runs closes one after another instead of one inside another.
///
/// A close can cause more closes: a `connectionLost` that writes to other connections
/// pushes their queues past the hard limit, and each of those losses writes to the rest
/// (a chat telling everyone who left). Run on the caller's stack, that chain nests one
/// set of frames per connection and overflows the stack with thousands of them. Here a
/// close asked for while a callback or another close is running waits in the queue, and
/// the outermost one runs them all in a loop: stack use does not grow with the number of
/// connections closed together.
///
/// One queue serves a whole event loop: the reactor has one; `ManualClock` has one for the
/// in-memory transports that share it. Transports call ``enter()`` and ``leave()``
/// around each callback they deliver, and ``close(_:_:)`` when their lifecycle decides to
/// finish a close.
public final class CloseQueue {
  // Unchecked: touched twice per callback on the hot path, only ever from the loop's thread.
  @exclusivity(unchecked) private var pending: [(connection: any QueuedClosing, reason: CloseReason)] = []
  @exclusivity(unchecked) private var depth = 0

  /// An empty queue.
  public init() {}

  /// True while a callback or a queued close is running: a close asked for now waits.
  public var isBusy: Bool { depth > 0 }

  /// Closes waiting to run.
  public var count: Int { pending.count }

  /// A callback begins.
  public func enter() { depth += 1 }

  /// A callback ends; the outermost one runs the closes that waited.
  public func leave() {
    depth -= 1
    if depth == 0 && !pending.isEmpty { drain() }
  }

  /// Finishes `connection`'s close for `reason`: at once if nothing is running, else when
  /// the outermost callback (or close) ends.
  public func close(_ connection: any QueuedClosing, _ reason: CloseReason) {
    pending.append((connection, reason))
    if depth == 0 { drain() }
  }

  private func drain() {
    depth += 1
    var index = 0
    while index < pending.count {
      let next = pending[index]
      index += 1
      next.connection.finishQueuedClose(next.reason)
    }
    pending.removeAll(keepingCapacity: true)
    depth -= 1
  }
}

/// A transport whose close a ``CloseQueue`` runs.
public protocol QueuedClosing: AnyObject {
  /// Frees everything and calls `connectionLost(reason)`: the transport's one close.
  func finishQueuedClose(_ reason: CloseReason)
}
