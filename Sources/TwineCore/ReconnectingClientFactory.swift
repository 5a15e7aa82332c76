/// A ``ClientFactory`` that reconnects after a failed attempt or a lost connection,
/// with exponential back-off and jitter (Twisted's `ReconnectingClientFactory`).
///
/// After a connection succeeds, call ``resetDelay()`` (a subclass does it in
/// `buildProtocol`, as Twisted's docs advise) so the next outage starts from ``initialDelay``.
open class ReconnectingClientFactory: ClientFactory {
  /// The largest delay between attempts, in seconds.
  public var maxDelay = 3600.0
  /// The first delay, in seconds.
  public var initialDelay = 1.0
  /// How much the delay grows per failed attempt.
  public var factor = 2.7182818284590451
  /// The relative spread of random jitter added to each delay.
  public var jitter = 0.11962656472
  /// Stop after this many retries in a row; nil for no limit.
  public var maxRetries: Int?
  /// The delay before the next attempt.
  public private(set) var delay = 1.0
  /// Retries since the last ``resetDelay()``.
  public private(set) var retries = 0
  /// False once ``stopTrying()`` was called.
  public private(set) var continueTrying = true
  private var pendingCall: (any ScheduledCall)?
  private var generator: any RandomNumberGenerator = SystemRandomNumberGenerator()

  /// Makes a reconnecting factory for `protocolType`; `random` makes the jitter repeatable in tests.
  public init(_ protocolType: Protocol.Type, random: (any RandomNumberGenerator)? = nil) {
    super.init(protocolType)
    delay = initialDelay
    if let random { generator = random }
  }

  /// Makes a reconnecting factory that builds each protocol with `build` (nil refuses), as
  /// ``Factory/init(counters:_:)`` does; `random` makes the jitter repeatable in tests.
  public init<P: Protocol>(
    random: (any RandomNumberGenerator)? = nil, _ build: @escaping (_ peer: SocketAddress) -> P?
  ) {
    super.init(build)
    delay = initialDelay
    if let random { generator = random }
  }

  /// Schedules another attempt (``retry(_:)``) unless ``stopTrying()`` was called.
  open override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
    if continueTrying { retry(connector) }
  }

  /// Schedules a reconnection (``retry(_:)``) unless ``stopTrying()`` was called.
  open override func clientConnectionLost(_ connector: any Connector, reason: CloseReason) {
    if continueTrying { retry(connector) }
  }

  /// Schedules another attempt after the next back-off delay.
  public func retry(_ connector: any Connector) {
    guard continueTrying else { return }
    retries += 1
    if let maxRetries, retries > maxRetries { return }
    delay = min(delay * factor, maxDelay)
    if jitter > 0 {
      let spread = delay * jitter
      delay = max(0, delay + Double.random(in: -spread...spread, using: &generator))
    }
    pendingCall = connector.scheduler?.callLater(delay) { [weak self, connector] in
      self?.pendingCall = nil
      connector.connect()
    }
  }

  /// Stops reconnecting and cancels a pending retry.
  public func stopTrying() {
    pendingCall?.cancel()
    pendingCall = nil
    continueTrying = false
  }

  /// Starts the back-off over from ``initialDelay``; call after a successful connection.
  public func resetDelay() {
    delay = initialDelay
    retries = 0
    continueTrying = true
  }
}
