import TwineCore

/// A `Scheduler` whose time moves only when a test says so (Twisted's `task.Clock`).
public final class ManualClock: Scheduler {
  /// The current time, in seconds; starts at 0.
  public private(set) var now: Double = 0
  private var calls: [ManualCall] = []
  private var sequence = 0

  /// Makes a clock at time 0.
  public init() {}

  /// The close queue of the in-memory "loop": transports on this clock run closes through it
  /// one after another, as the reactor does (a close never runs inside another).
  public let closes = CloseQueue()

  /// Calls still waiting, soonest first.
  public var pendingCalls: [any ScheduledCall] { calls.filter(\.isActive).sorted(by: Self.order) }

  /// Schedules `body` at `now + delay`; it runs during an ``advance(_:)`` that reaches it.
  @discardableResult
  public func callLater(_ delay: Double, _ body: @escaping () -> Void) -> any ScheduledCall {
    sequence += 1
    let call = ManualCall(clock: self, time: now + max(0, delay), sequence: sequence, body: body)
    calls.append(call)
    return call
  }

  /// Moves time forward by `seconds`, running every call that falls due, in time order
  /// (calls due at the same time run in the order they were scheduled).
  public func advance(_ seconds: Double) {
    let target = now + seconds
    while let next = calls.filter({ $0.isActive && $0.time <= target }).min(by: Self.order) {
      now = max(now, next.time)
      next.run()
    }
    now = target
    calls.removeAll { !$0.isActive }
  }

  fileprivate func nextSequence() -> Int {
    sequence += 1
    return sequence
  }

  private static func order(_ a: any ScheduledCall, _ b: any ScheduledCall) -> Bool {
    let a = a as! ManualCall
    let b = b as! ManualCall
    return (a.time, a.sequence) < (b.time, b.sequence)
  }
}

/// A call scheduled on a ``ManualClock``.
final class ManualCall: ScheduledCall {
  private unowned let clock: ManualClock
  private(set) var time: Double
  private(set) var sequence: Int
  private var body: (() -> Void)?

  init(clock: ManualClock, time: Double, sequence: Int, body: @escaping () -> Void) {
    self.clock = clock
    self.time = time
    self.sequence = sequence
    self.body = body
  }

  var isActive: Bool { body != nil }

  func cancel() { body = nil }

  func reset(_ delay: Double) {
    guard isActive else { return }
    time = clock.now + max(0, delay)
    sequence = clock.nextSequence()
  }

  func delay(_ seconds: Double) {
    guard isActive else { return }
    time += seconds
  }

  func run() {
    guard let body else { return }
    self.body = nil
    body()
  }
}
