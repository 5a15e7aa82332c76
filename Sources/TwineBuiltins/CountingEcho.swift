import TwineCore

/// The tutorial's counting Echo: echoes, but a connection that would take its
/// factory's live count past ``maxConnections`` is told so and closed.
///
/// The transport counts the connection as live before `connectionMade` and stops
/// counting it after `connectionLost`, refused ones included, so the count stays right.
/// The count is that of the factory that built it (``Protocol/factory``), so build it with
/// a closure factory, or with ``CountingFactory``:
///
/// ```swift
/// let factory = Factory { _ in CountingEcho(maxConnections: 10) }
/// ```
public final class CountingEcho: Protocol {
  /// The exact refusal text.
  public static let refusal = "Too many connections, try later"

  /// How many connections the factory may have open at once; the next one is refused.
  public let maxConnections: Int

  /// An echo that refuses a connection past `maxConnections` live ones.
  public init(maxConnections: Int) {
    self.maxConnections = maxConnections
    super.init()
  }

  /// An echo with the tutorial's limit of 100 (what `Factory(CountingEcho.self)` builds).
  public required convenience init() { self.init(maxConnections: 100) }

  /// Refuses the connection (says why, then closes) when it takes the count past the limit.
  public override func connectionMade() {
    refuseIfOver(maxConnections: maxConnections)
  }

  /// Writes the bytes back.
  public override func dataReceived(_ data: RawSpan) {
    transport.write(data)
  }
}

/// The factory for ``CountingEcho``: builds each one with the limit all its connections share.
public final class CountingFactory: Factory {
  /// How many connections may be open at once; the next one is refused.
  public let maxConnections: Int

  /// Makes a factory that serves at most `maxConnections` at once (the tutorial's 100).
  public init(maxConnections: Int = 100) {
    self.maxConnections = maxConnections
    super.init { _ in CountingEcho(maxConnections: maxConnections) }
  }
}

extension Protocol {
  /// Refuses this connection when it takes its factory's live count past `maxConnections`
  /// (the transport counts it before `connectionMade`): counts the refusal, writes
  /// `message`, closes, and returns true. Call it first in `connectionMade`.
  @discardableResult
  public func refuseIfOver(maxConnections: Int, message: String = CountingEcho.refusal) -> Bool {
    guard let counters = factory?.counters, counters.live > maxConnections else { return false }
    counters.noteRefused()
    transport.write(message)
    transport.loseConnection()
    return true
  }
}
