import CLibevent
import Synchronization

/// The one thread-safe door into a ``Reactor``: queues closures from any thread
/// and wakes the loop to run them on the reactor's thread, in the order queued.
///
/// Owns one libevent `event` that is activated from other threads (libevent's
/// pthreads locking is on for every reactor's base).
public final class CrossThreadCaller: @unchecked Sendable {
  /// The libevent event, shared with other threads only under the lock.
  private struct EventHandle: @unchecked Sendable { let raw: OpaquePointer }
  private struct State {
    var queue: [@Sendable () -> Void] = []
    var event: EventHandle?
  }
  private let state: Mutex<State>

  init(base: OpaquePointer) throws(TwineError) {
    state = Mutex(State())
    let context = Unmanaged.passUnretained(self).toOpaque()
    guard
      let event = event_new(
        base, -1, 0,
        { _, _, context in Unmanaged<CrossThreadCaller>.fromOpaque(context!).takeUnretainedValue().drain() },
        context)
    else { throw .libevent("event_new") }
    let handle = EventHandle(raw: event)
    state.withLock { $0.event = handle }
  }

  /// Queues `body` to run on the reactor's thread and wakes the loop. Returns false
  /// (and drops `body`) once the reactor has shut down.
  @discardableResult
  public func callFromThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    state.withLock { state in
      guard let event = state.event else { return false }
      state.queue.append(body)
      if state.queue.count == 1 { event_active(event.raw, 0, 0) }
      return true
    }
  }

  private func drain() {
    let batch = state.withLock { state in
      let batch = state.queue
      state.queue.removeAll(keepingCapacity: true)
      return batch
    }
    for body in batch { body() }
  }

  /// Frees the event; later calls are refused. Called by the reactor's shutdown.
  func close() {
    let event = state.withLock { state in
      let event = state.event
      state.event = nil
      state.queue = []
      return event
    }
    if let event { event_free(event.raw) }
  }
}
