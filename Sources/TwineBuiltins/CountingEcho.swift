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

  /// The slot ``CountingFactory`` reserved for this connection before building it, given
  /// back once when the connection ends; nil for an echo that counts in `connectionMade`.
  private var slot: ConnectionSlots?

  /// An echo that refuses a connection past `maxConnections` live ones.
  public init(maxConnections: Int) {
    self.maxConnections = maxConnections
    super.init()
  }

  /// An echo admitted by `slots` (one slot already reserved for it).
  init(admittedBy slots: ConnectionSlots) {
    maxConnections = slots.limit
    slot = slots
    super.init()
  }

  /// An echo with the tutorial's limit of 100 (what `Factory(CountingEcho.self)` builds).
  public required convenience init() { self.init(maxConnections: 100) }

  // A protocol built but never connected (its socket failed first) still gives its slot back.
  deinit { slot?.release() }

  /// Refuses the connection (says why, then closes) when it takes the count past the limit;
  /// one admitted by ``CountingFactory`` was counted before it was built.
  public override func connectionMade() {
    guard slot == nil else { return }
    refuseIfOver(maxConnections: maxConnections)
  }

  /// Writes the bytes back.
  public override func dataReceived(_ data: RawSpan) {
    transport.write(data)
  }

  /// Gives the connection's slot back, so the next client can be served.
  public override func connectionLost(_ reason: CloseReason) {
    slot?.release()
    slot = nil
  }
}

/// The factory for ``CountingEcho``: admits each connection by reserving one of the
/// ``slots`` atomically before building its protocol, and refuses (says
/// ``CountingEcho/refusal``, closes, counts it refused) when none is free. Factories on
/// several reactors that share one ``ConnectionSlots`` serve at most its limit together,
/// and refuse none while fewer are served.
public final class CountingFactory: Factory {
  /// How many connections may be open at once; the next one is refused.
  public var maxConnections: Int { slots.limit }

  /// The slots every connection of this factory (and of any factory sharing them) takes.
  public let slots: ConnectionSlots

  /// Makes a factory that serves at most `maxConnections` at once (the tutorial's 100).
  public convenience init(maxConnections: Int = 100) {
    self.init(slots: ConnectionSlots(limit: maxConnections))
  }

  /// Makes a factory that serves while one of `slots` is free (share them, and striped
  /// `counters`, between the factories of a reactor group).
  public init(slots: ConnectionSlots, counters: ConnectionCounters = ConnectionCounters()) {
    self.slots = slots
    super.init(CountingEcho.self, counters: counters)
  }

  /// A ``CountingEcho`` holding a reserved slot, or, with none free, a protocol that refuses.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let proto: Protocol = slots.reserve() ? CountingEcho(admittedBy: slots) : Refusal()
    proto.factory = self
    return proto
  }
}

/// Counts the refusal, says ``CountingEcho/refusal`` and closes.
private final class Refusal: Protocol {
  override func connectionMade() {
    factory?.counters.noteRefused()
    transport.write(CountingEcho.refusal)
    transport.loseConnection()
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
