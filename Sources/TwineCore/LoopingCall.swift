/// Calls a closure repeatedly at a fixed interval on a ``Scheduler`` (Twisted's `task.LoopingCall`).
///
/// Missed intervals are skipped, not run in a burst: the next call is aligned to
/// the start time plus a whole number of intervals.
public final class LoopingCall {
  private let scheduler: any Scheduler
  private let body: () -> Void
  private var pending: (any ScheduledCall)?
  private var startTime = 0.0
  private var count = 0
  /// The interval in seconds while running, nil when stopped.
  public private(set) var interval: Double?

  /// Makes a looping call of `body` on `scheduler`; call ``start(interval:now:)`` to begin.
  public init(_ scheduler: any Scheduler, _ body: @escaping () -> Void) {
    self.scheduler = scheduler
    self.body = body
  }

  /// True while started.
  public var isRunning: Bool { interval != nil }

  /// Starts calling every `interval` seconds (> 0); with `now`, the first call is immediate.
  public func start(interval: Double, now: Bool = true) {
    precondition(interval > 0, "LoopingCall interval must be positive")
    stop()
    self.interval = interval
    startTime = scheduler.now
    count = 0
    if now {
      fire()
    } else {
      scheduleNext()
    }
  }

  /// Stops; no call runs after this returns.
  public func stop() {
    pending?.cancel()
    pending = nil
    interval = nil
  }

  private func fire() {
    pending = nil
    body()
    if interval != nil && pending == nil { scheduleNext() }
  }

  private func scheduleNext() {
    guard let interval else { return }
    let elapsed = scheduler.now - startTime
    count = max(count + 1, Int((elapsed / interval).rounded(.down)) + 1)
    let next = startTime + Double(count) * interval
    pending = scheduler.callLater(max(0, next - scheduler.now)) { [weak self] in self?.fire() }
  }
}
