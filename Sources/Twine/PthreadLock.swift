import Glibc

/// A value behind a `pthread_mutex_t`, for state that C hosts' threads contend for (the C
/// API's handle tables, ``DescriptorClaims``).
///
/// Not `Synchronization.Mutex`: its contended path waits on a futex inside the (not
/// instrumented) Swift runtime, which ThreadSanitizer cannot see, so every access made
/// after a contended acquire is reported as a race; ThreadSanitizer intercepts
/// `pthread_mutex_lock`, so a host's 4-thread test under TSan reports only real races.
package final class PthreadLock<State>: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private var state: State

  /// Makes the lock around `state`.
  package init(_ state: State) {
    self.state = state
    mutex = .allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }

  /// Runs `body` with the state, holding the lock.
  package func withLock<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure)
    -> Result
  {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return try body(&state)
  }
}
