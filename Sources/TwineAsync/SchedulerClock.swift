import Glibc
import Synchronization
import Twine

/// A `Scheduler` as a Swift `Clock`: the reactor's timers (``AsyncReactor/clock``), or
/// a test's `ManualClock`, so code generic over `Clock` runs on either.
///
/// ```swift
/// try await Task.sleep(for: .seconds(5), clock: reactor.clock)
/// ```
///
/// Sleeps are the scheduler's own delayed calls, made on its thread: the reactor's, or the
/// actor given with a manual scheduler (a test's `@MainActor`, which also moves its time).
public struct SchedulerClock: Clock, @unchecked Sendable {
  // @unchecked Sendable: `scheduler` (not Sendable) is used only on its own thread: every use
  // of a manual one runs isolated to `isolation`; the reactor is reached through its executor,
  // on the loop thread. `now` reads a reactor's clock with clock_gettime, which is thread-safe.

  /// A point in time: seconds since the scheduler's zero, as a `Duration`.
  public struct Instant: InstantProtocol, Sendable {
    /// The time since the scheduler's zero.
    public var offset: Duration

    /// The instant `offset` after the scheduler's zero.
    public init(offset: Duration) { self.offset = offset }

    /// This instant moved by `duration`.
    public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }

    /// The time from this instant to `other`.
    public func duration(to other: Instant) -> Duration { other.offset - offset }

    /// Earlier first.
    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
  }

  /// @unchecked Sendable for the reason the clock is (the scheduler is used on its thread only).
  private enum Source: @unchecked Sendable {
    case reactor(ReactorExecutor)
    case manual(any Scheduler, isolation: any Actor)
  }
  private let source: Source

  /// The reactor's clock (its monotonic time, its timers).
  public init(reactor: AsyncReactor) {
    source = .reactor(reactor.executor)
  }

  /// A clock over `scheduler`, used only from `isolation` (a `ManualClock` and the test's
  /// `MainActor.shared`): sleeps are scheduled there, and its time moves there.
  public init(_ scheduler: any Scheduler, isolation: any Actor) {
    source = .manual(scheduler, isolation: isolation)
  }

  /// The current time. For a manual scheduler, read it on its actor.
  public var now: Instant {
    switch source {
    case .reactor:
      var ts = timespec()
      clock_gettime(CLOCK_MONOTONIC, &ts)
      return Instant(offset: .seconds(ts.tv_sec) + .nanoseconds(ts.tv_nsec))
    case .manual(let scheduler, _):
      return Instant(offset: .seconds(scheduler.now))
    }
  }

  /// The reactor's timers have microsecond resolution.
  public var minimumResolution: Duration { .microseconds(1) }

  /// Waits until `deadline` on the scheduler; throws `CancellationError` when the task is
  /// cancelled (the scheduled call is cancelled too).
  public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
    let sleeper = Sleeper()
    let source = self.source
    try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { continuation in
        guard sleeper.park(continuation) else { return }
        switch source {
        case .reactor(let executor):
          let posted = executor.onLoop {
            guard let reactor = executor.reactor else {
              sleeper.finish(throwing: TwineError.reactorShutDown)
              return
            }
            sleeper.arm(on: reactor, at: deadline.offset.seconds)
          }
          if !posted { sleeper.finish(throwing: TwineError.reactorShutDown) }
        case .manual(let scheduler, let isolation):
          let box = UncheckedScheduler(scheduler)
          Task { await Self.arm(sleeper, on: box, at: deadline.offset.seconds, isolation: isolation) }
        }
      }
    } onCancel: {
      guard sleeper.finish(throwing: CancellationError()) else { return }
      switch source {
      case .reactor(let executor):
        executor.later { sleeper.disarm() }
      case .manual(_, let isolation):
        Task { await Self.disarm(sleeper, isolation: isolation) }
      }
    }
  }

  private static func arm(
    _ sleeper: Sleeper, on scheduler: UncheckedScheduler, at time: Double, isolation: isolated any Actor
  ) {
    sleeper.arm(on: scheduler.scheduler, at: time)
  }

  private static func disarm(_ sleeper: Sleeper, isolation: isolated any Actor) {
    sleeper.disarm()
  }
}

/// A manual scheduler on its way to its actor (it is used only there).
private struct UncheckedScheduler: @unchecked Sendable {
  let scheduler: any Scheduler
  init(_ scheduler: any Scheduler) { self.scheduler = scheduler }
}

/// One sleep: the waiting task's continuation (resumed once, by the timer or by
/// cancellation, under a lock) and the scheduled call (touched on the scheduler's thread only).
private final class Sleeper: @unchecked Sendable {
  // @unchecked Sendable: `continuation` and `done` are under `lock`; `call` is touched only on
  // the scheduler's thread (arm and disarm run there).
  private let lock = Mutex<(continuation: UnsafeContinuation<Void, any Error>?, done: Bool)>((nil, false))
  private var call: (any ScheduledCall)?

  /// Keeps `continuation`; false (and resumes it) if the sleep already ended.
  func park(_ continuation: UnsafeContinuation<Void, any Error>) -> Bool {
    let done = lock.withLock { state in
      if !state.done { state.continuation = continuation }
      return state.done
    }
    if done { continuation.resume(throwing: CancellationError()) }
    return !done
  }

  /// Ends the sleep with `error`, or at the deadline (nil); false if it had already ended.
  @discardableResult
  func finish(throwing error: (any Error)?) -> Bool {
    let continuation = lock.withLock { state -> UnsafeContinuation<Void, any Error>?? in
      guard !state.done else { return .none }
      state.done = true
      defer { state.continuation = nil }
      return .some(state.continuation)
    }
    guard let continuation else { return false }
    if let error { continuation?.resume(throwing: error) } else { continuation?.resume() }
    return true
  }

  /// Scheduler's thread: schedules the wake-up (unless the sleep was cancelled meanwhile).
  func arm(on scheduler: any Scheduler, at time: Double) {
    guard lock.withLock({ !$0.done }) else { return }
    call = scheduler.callLater(max(0, time - scheduler.now)) { [self] in
      call = nil
      finish(throwing: nil)
    }
  }

  /// Scheduler's thread: cancels the wake-up.
  func disarm() {
    call?.cancel()
    call = nil
  }
}

extension Duration {
  /// The duration in seconds, as a `Double`.
  var seconds: Double {
    Double(components.seconds) + Double(components.attoseconds) / 1e18
  }
}
