import CLibevent
import Glibc

/// The one thread-safe door into a ``Reactor``: queues closures from any thread
/// and wakes the loop to run them on the reactor's thread, in the order queued.
///
/// Owns one `eventfd` and the persistent libevent `event` that watches it. Other
/// threads touch only the queue and the eventfd, under a lock; the event base is
/// never touched off its thread, so bases need no libevent locking
/// (`evthread_use_pthreads` cost about 7 % of the instructions of every echo). The lock is a
/// `pthread_mutex_t`, which ThreadSanitizer sees (Swift's `Mutex` waits where it cannot).
public final class CrossThreadCaller: Sendable {
  private struct State {
    var queue: [@Sendable () -> Void] = []
    var open = true
  }
  private let state = LockedValue(State())
  private let wakeFD: Int32
  /// Touched only on the reactor's thread (init, drain, close).
  private nonisolated(unsafe) var event: OpaquePointer?

  init(base: OpaquePointer) throws(TwineError) {
    wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    guard wakeFD >= 0 else { throw .libevent("eventfd: \(SocketError.current())") }
    let context = Unmanaged.passUnretained(self).toOpaque()
    event = event_new(
      base, wakeFD, Int16(EV_READ | EV_PERSIST),
      { _, _, context in Unmanaged<CrossThreadCaller>.fromOpaque(context!).takeUnretainedValue().drain() },
      context)
    guard event != nil else {
      Glibc.close(wakeFD)
      throw .libevent("event_new")
    }
    event_add(event, nil)
  }

  /// Queues `body` to run on the reactor's thread and wakes the loop. Returns false
  /// (and drops `body`) once the reactor has shut down.
  @discardableResult
  public func callFromThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    state.withLock { state in
      guard state.open else { return false }
      state.queue.append(body)
      if state.queue.count == 1 {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, MemoryLayout<UInt64>.size)
      }
      return true
    }
  }

  private func drain() {
    var count: UInt64 = 0
    _ = Glibc.read(wakeFD, &count, MemoryLayout<UInt64>.size)
    let batch = state.withLock { state in
      let batch = state.queue
      state.queue.removeAll(keepingCapacity: true)
      return batch
    }
    for body in batch { body() }
  }

  /// Frees the event and the eventfd; later calls are refused. Called by the reactor's shutdown.
  func close() {
    // Take the queue out under the lock, drop it outside: a closure's captures may
    // deinit into code that calls callFromThread, which takes the lock again.
    let (wasOpen, dropped) = state.withLock { state in
      defer {
        state.open = false
        state.queue = []
      }
      return (state.open, state.queue)
    }
    _ = consume dropped
    guard wasOpen else { return }
    if let event {
      event_free(event)
      self.event = nil
    }
    Glibc.close(wakeFD)
  }
}
