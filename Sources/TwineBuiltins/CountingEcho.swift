import TwineCore

/// The tutorial's counting Echo: echoes, but a connection that would take the
/// factory past ``CountingFactory/maxConnections`` is told so and closed.
///
/// The transport counts the connection as live before `connectionMade` and stops
/// counting it after `connectionLost`, refused ones included, so the count stays right.
public final class CountingEcho: Protocol {
  /// The exact refusal text.
  public static let refusal = "Too many connections, try later"

  /// Refuses the connection (says why, then closes) when it takes the count past the limit.
  public override func connectionMade() {
    guard let factory = factory as? CountingFactory else { return }
    if factory.counters.live > factory.maxConnections {
      factory.counters.noteRefused()
      transport.write(Self.refusal)
      transport.loseConnection()
    }
  }

  /// Writes the bytes back.
  public override func dataReceived(_ data: RawSpan) {
    transport.write(data)
  }
}

/// The factory for ``CountingEcho``: holds the limit all its connections share.
public final class CountingFactory: Factory {
  /// How many connections may be open at once; the next one is refused.
  public let maxConnections: Int

  /// Makes a factory that serves at most `maxConnections` at once (the tutorial's 100).
  public init(maxConnections: Int = 100) {
    self.maxConnections = maxConnections
    super.init(CountingEcho.self)
  }
}
