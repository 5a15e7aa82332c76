import TwineCore

/// The state behind ``TimeoutMixin``: the period, the deadline, and the one scheduled call.
/// A protocol adopting ``TimeoutMixin`` holds one: `let idleTimer = IdleTimer()`.
///
/// It keeps its protocol weakly and the scheduled call keeps it weakly, so a pending
/// timeout never keeps a closed connection alive; freeing it cancels the call.
/// ``TimeoutMixin/resetTimeout()`` only moves the deadline: the call is re-armed when it
/// fires early, so resetting on every read costs no timer operation.
public final class IdleTimer {
  /// The timeout in seconds, or nil when off.
  public private(set) var period: Double?
  /// When the timeout falls due, on the scheduler's clock (meaningful while ``isArmed``).
  public private(set) var deadline: Double = 0
  private var call: (any ScheduledCall)?
  private var scheduler: (any Scheduler)?
  private weak var owner: (any TimeoutMixin)?

  /// Makes a timer that is off.
  public init() {}

  deinit { call?.cancel() }

  /// True while a timeout is pending.
  public var isArmed: Bool { call?.isActive ?? false }

  /// Starts (or changes, or with nil stops) the timeout of `owner`, counted from now.
  func set(_ seconds: Double?, for owner: any TimeoutMixin) {
    guard let seconds else {
      stop()
      return
    }
    precondition(owner.transport != nil, "setTimeout needs the connection: call it from connectionMade or later")
    let scheduler = owner.transport.scheduler
    self.owner = owner
    self.scheduler = scheduler
    period = max(0, seconds)
    deadline = scheduler.now + max(0, seconds)
    if let call, call.isActive {
      if call.time > deadline { call.reset(max(0, seconds)) }
    } else {
      arm(after: max(0, seconds))
    }
  }

  /// Moves the deadline to one period from now, if a timeout is pending.
  func reset() {
    guard let period, let scheduler, isArmed else { return }
    deadline = scheduler.now + period
  }

  /// Turns the timeout off.
  func stop() {
    period = nil
    call?.cancel()
    call = nil
  }

  private func arm(after delay: Double) {
    call = scheduler?.callLater(delay) { [weak self] in self?.fire() }
  }

  private func fire() {
    call = nil
    guard let owner, owner.connected, period != nil, let scheduler else { return }
    let left = deadline - scheduler.now
    if left > 0.001 {
      arm(after: left)  // there was activity since the call was armed
      return
    }
    owner.timeoutConnection()
  }
}
