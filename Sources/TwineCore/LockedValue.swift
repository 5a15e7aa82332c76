#if canImport(Glibc)
  import Glibc
#endif

/// A value behind a pthread mutex, for state several reactors' threads share (a chat's
/// nicks, connection limits per peer). Unlike `Synchronization.Mutex`, whose futex lives in
/// the uninstrumented Swift runtime, ThreadSanitizer sees this lock, so `make test-tsan`
/// checks the code that uses it instead of reporting false races. Owns one mutex.
///
/// ```swift
/// let nicks = LockedValue(Set<String>())
/// let taken = nicks.withLock { $0.insert("alice").inserted }
/// ```
public final class LockedValue<Value>: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private var value: Value

  /// Makes a lock around `value`.
  public init(_ value: Value) {
    self.value = value
    mutex = .allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }

  /// Runs `body` with the value while holding the lock; returns what `body` returns.
  public func withLock<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return try body(&value)
  }
}
