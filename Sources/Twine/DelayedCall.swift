import CLibevent

/// A closure the reactor runs once after a delay (Twisted's `DelayedCall`).
/// Owns one libevent timer `event`, freed when it fires, is cancelled, or the reactor shuts down.
public final class DelayedCall: ScheduledCall {
  /// Weak: the reactor's shutdown cancels every pending call (its gate makes none after), so
  /// a call outliving its reactor is already inactive; the weak reference makes that a
  /// guarantee rather than a rule (nil inside the reactor's deinit, too).
  private weak var reactor: Reactor?
  private var event: OpaquePointer?
  private var body: (() -> Void)?
  /// When it will run, on the reactor's monotonic clock.
  public private(set) var time: Double

  /// A pending call; the caller has passed the reactor's gate (``Reactor/callLater(_:_:)``).
  init(reactor: Reactor, delay: Double, body: @escaping () -> Void) {
    self.reactor = reactor
    self.body = body
    self.time = reactor.now + max(0, delay)
    let context = Unmanaged.passUnretained(self).toOpaque()
    event = twine_evtimer_new(
      reactor.base,
      { _, _, context in Unmanaged<DelayedCall>.fromOpaque(context!).takeUnretainedValue().fire() }, context)
    guard event != nil else {
      reactor.logger.error("evtimer_new failed: delayed call dropped")
      self.body = nil
      return
    }
    reactor.delayedCalls[ObjectIdentifier(self)] = self
    arm(max(0, delay))
  }

  /// A call the reactor refused (it has shut down): inactive from the start, no timer.
  init(refusedAt time: Double) {
    self.time = time
  }

  deinit { assert(event == nil, "DelayedCall freed with its timer pending") }

  /// True until it has run or been cancelled.
  public var isActive: Bool { body != nil }

  /// Stops it from running; does nothing if it already ran or was cancelled.
  public func cancel() {
    guard isActive else { return }
    body = nil
    release()
  }

  /// Runs it `delay` seconds from now instead.
  public func reset(_ delay: Double) {
    guard isActive, let reactor else { return }
    time = reactor.now + max(0, delay)
    arm(max(0, delay))
  }

  /// Pushes it `seconds` later.
  public func delay(_ seconds: Double) {
    guard isActive, let reactor else { return }
    reset(time + seconds - reactor.now)
  }

  private func arm(_ delay: Double) {
    let delay = delay.isFinite ? min(delay, 1e9) : 1e9  // "never" is a timer ~30 years out, not a trap
    var tv = timeval(tv_sec: Int(delay), tv_usec: Int((delay - delay.rounded(.down)) * 1_000_000))
    event_add(event, &tv)
  }

  private func fire() {
    guard let body, let reactor else { return }
    self.body = nil
    withExtendedLifetime(self) {
      release()
      // A close the body causes (a timeout, a cascade of drops) runs when it returns, from the
      // reactor's close queue: never on the timer's own stack inside the user's code.
      reactor.closes.enter()
      body()
      reactor.closes.leave()
    }
  }

  /// The one place the timer event is freed and the reactor lets go of this call.
  private func release() {
    if let event {
      event_free(event)
      self.event = nil
    }
    reactor?.delayedCalls[ObjectIdentifier(self)] = nil
  }
}
