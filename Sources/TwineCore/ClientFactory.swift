/// An outgoing connection attempt and its connection (Twisted's `IConnector`).
public protocol Connector: AnyObject {
  /// Starts (or restarts) connecting.
  func connect()
  /// Stops an attempt in progress; `clientConnectionFailed` is not called for it.
  func stopConnecting()
  /// Closes the connection if connected, or stops the attempt.
  func disconnect()
  /// The host and port being connected to.
  var destination: (host: String, port: Int) { get }
  /// The clock to schedule retries on (the reactor); nil once it is gone.
  var scheduler: (any Scheduler)? { get }
}

/// A ``Factory`` for outgoing connections: it also hears how attempts fail and
/// how connections end (Twisted's `ClientFactory`). It has both of ``Factory``'s forms
/// (`Greeter` is the example of ``Factory/init(counters:_:)``):
///
/// ```swift
/// reactor.connectTCP("127.0.0.1", 8025, factory: ClientFactory { _ in Greeter(greeting: "hi") })
/// ```
open class ClientFactory: Factory {
  /// An attempt started.
  open func startedConnecting(_ connector: any Connector) {}
  /// An attempt failed before a connection existed (refused, timed out, lookup failed).
  open func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {}
  /// A connection this factory's protocol served has closed.
  open func clientConnectionLost(_ connector: any Connector, reason: CloseReason) {}
}
