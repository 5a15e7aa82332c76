import TwineCore

/// Closes connections that stay idle too long (Twisted's `policies.TimeoutFactory`):
/// no bytes read or written for ``timeout`` seconds aborts the connection with
/// `CloseReason.timedOut` (queued output is dropped: a peer that stopped reading
/// must not hold the connection open).
public final class TimeoutFactory: WrappingFactory {
  /// Seconds of silence, in both directions, before the connection is dropped.
  public let timeout: Double

  /// Wraps `factory`, dropping connections idle for `timeout` seconds.
  public init(wrapping factory: Factory, timeout: Double) {
    self.timeout = timeout
    super.init(wrapping: factory, wrapperType: IdleWrapper.self)
  }

  /// Wraps the protocol in a timer that restarts on every read and write.
  public override func makeWrapper(around inner: Protocol, peer: SocketAddress) -> Protocol? {
    let wrapper = super.makeWrapper(around: inner, peer: peer) as? IdleWrapper
    wrapper?.timeout = timeout
    return wrapper
  }
}

/// Restarts its timer on traffic; aborts when it fires.
private final class IdleWrapper: ProtocolWrapper {
  var timeout = 0.0
  private var timer: (any ScheduledCall)?

  override func connectionMade() {
    timer = transport.scheduler.callLater(timeout) { [weak self] in self?.timedOut() }
    super.connectionMade()
  }

  override func dataReceived(_ data: RawSpan) {
    timer?.reset(timeout)
    super.dataReceived(data)
  }

  override func write(_ data: RawSpan) {
    timer?.reset(timeout)
    super.write(data)
  }

  override func connectionLost(_ reason: CloseReason) {
    timer?.cancel()
    timer = nil
    super.connectionLost(reason)
  }

  private func timedOut() {
    timer = nil
    transport.abortConnection(reason: .timedOut)
  }
}
