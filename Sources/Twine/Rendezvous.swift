import Glibc

/// One value handed from one thread to another that waits for it (a reactor group's
/// synchronous calls into its reactors). Owns one POSIX semaphore.
final class Rendezvous<Value: Sendable>: Sendable {
  private let value = LockedValue<Value?>(nil)
  /// Allocated and destroyed here; `sem_post` and `sem_wait` are thread-safe.
  private nonisolated(unsafe) let semaphore: UnsafeMutablePointer<sem_t>

  init() {
    semaphore = .allocate(capacity: 1)
    sem_init(semaphore, 0, 0)
  }

  deinit {
    sem_destroy(semaphore)
    semaphore.deallocate()
  }

  /// Hands `value` over (the first one counts) and wakes the waiter.
  func put(_ newValue: Value) {
    let first = value.withLock { value in
      guard value == nil else { return false }
      value = newValue
      return true
    }
    if first { sem_post(semaphore) }
  }

  /// Waits until a value was put, and returns it.
  func wait() -> Value {
    while sem_wait(semaphore) != 0 {}  // EINTR: a signal arrived; keep waiting
    sem_post(semaphore)  // a second wait returns the same value at once
    return value.withLock { $0! }
  }
}
