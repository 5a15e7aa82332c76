/// Something that runs closures later on its own thread (Twisted's `IReactorTime`):
/// the reactor, or `ManualClock` in tests.
public protocol Scheduler: AnyObject {
  /// Runs `body` once after `delay` seconds; returns a handle to cancel or move it.
  @discardableResult
  func callLater(_ delay: Double, _ body: @escaping () -> Void) -> any ScheduledCall

  /// The scheduler's current time, in seconds, monotonic.
  var now: Double { get }
}

/// A pending call from ``Scheduler/callLater(_:_:)`` (Twisted's `IDelayedCall`).
public protocol ScheduledCall: AnyObject {
  /// True until the call has run or been cancelled.
  var isActive: Bool { get }
  /// When it will run, on the scheduler's clock.
  var time: Double { get }
  /// Stops it from running. Does nothing if it already ran or was cancelled.
  func cancel()
  /// Runs it `delay` seconds from now instead.
  func reset(_ delay: Double)
  /// Pushes it `seconds` later.
  func delay(_ seconds: Double)
}
