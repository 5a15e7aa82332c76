import Glibc

/// The scheduler a closed connection hands out: its reactor may be gone, so nothing it
/// schedules ever runs (every call comes back inactive), and its clock is the monotonic one.
final class InertScheduler: Scheduler, Sendable {
  /// The one instance (it holds nothing).
  static let shared = InertScheduler()

  private init() {}

  /// Seconds on the monotonic clock.
  var now: Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
  }

  /// Never runs `body`: returns an inactive call.
  @discardableResult
  func callLater(_ delay: Double, _ body: @escaping () -> Void) -> any ScheduledCall {
    DelayedCall(refusedAt: now + max(0, delay))
  }
}
