/// The per-connection object a user subclasses, as in Twisted: one instance per
/// connection, told about the connection's life through three events.
///
/// Events arrive on the reactor's thread, in order: ``connectionMade()`` once,
/// ``dataReceived(_:)`` any number of times, then ``connectionLost(_:)`` once.
/// None arrives after ``connectionLost(_:)``.
///
/// ```swift
/// final class Echo: Protocol {
///   override func dataReceived(_ data: RawSpan) { transport.write(data) }
/// }
/// ```
open class Protocol {
  /// The connection this protocol talks to; set by ``makeConnection(_:)`` before
  /// ``connectionMade()``. It stays set after the connection closes, where writes are no-ops.
  public internal(set) var transport: (any Transport)!

  /// The factory that built this protocol (``Factory/buildProtocol(_:)`` sets it; an override should too), or nil.
  ///
  /// Weak: the transport holds the factory while the connection is open (as do the ports
  /// and connectors that use it), so it is there whenever a callback runs. Held strongly it
  /// would make a cycle with any closure factory whose closure keeps the protocols it built
  /// (factory → closure → protocol → factory), and neither would ever be freed.
  public weak var factory: Factory?

  /// True between ``makeConnection(_:)`` and ``connectionLost(_:)``.
  public internal(set) var connected = false

  /// Makes a protocol; `Factory` calls this through the protocol's type.
  public required init() {}

  /// Attaches the transport and calls ``connectionMade()``. Called by transports.
  public final func makeConnection(_ transport: any Transport) {
    self.transport = transport
    connected = true
    connectionMade()
  }

  /// Called by transports when the connection is gone: records it, then calls ``connectionLost(_:)``.
  public final func connectionClosed(_ reason: CloseReason) {
    guard connected else { return }
    connected = false
    connectionLost(reason)
  }

  /// The connection is up: greet, start timers, or refuse by calling `transport.loseConnection()`.
  open func connectionMade() {}

  /// Bytes arrived. `data` is borrowed from the reactor's input buffer and valid only
  /// during this call: copy what you keep (`Array(data)` via ``Swift/RawSpan/bytes``).
  open func dataReceived(_ data: RawSpan) {}

  /// The connection is closed, for the given reason. Called exactly once.
  open func connectionLost(_ reason: CloseReason) {}

  /// The server is draining (`Reactor.drain`): it accepts no new connections and closes
  /// this one with `.reactorShutdown` at the drain's deadline. Finish the request in
  /// progress and close (`transport.loseConnection()`), or say goodbye; the default does
  /// nothing, and the connection ends when the peer closes it or at the deadline.
  /// Called at most once, between ``connectionMade()`` and ``connectionLost(_:)``.
  open func connectionDraining() {}
}
