import TwineCore

/// A factory that wraps another (Twisted's `policies.WrappingFactory`): for each
/// connection it asks ``wrappedFactory`` for a protocol and puts a ``ProtocolWrapper``
/// around it. It shares the wrapped factory's counters, so those stay true.
///
/// ```swift
/// let limited = ConnectionLimitFactory(wrapping: Factory(Echo.self), maxConnections: 100)
/// try reactor.listenTCP(8025, factory: limited)
/// ```
open class WrappingFactory: Factory {
  /// The factory whose protocols do the work.
  public let wrappedFactory: Factory

  /// Wraps `factory`, building `wrapperType` around each of its protocols.
  public init(wrapping factory: Factory, wrapperType: ProtocolWrapper.Type = ProtocolWrapper.self) {
    wrappedFactory = factory
    super.init(wrapperType, counters: factory.counters)
  }

  /// The wrapped factory's protocol inside a new wrapper, or nil when either refuses.
  open override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    guard let inner = wrappedFactory.buildProtocol(peer) else { return nil }
    return makeWrapper(around: inner, peer: peer)
  }

  /// Makes the wrapper for `inner`; override to configure it.
  open func makeWrapper(around inner: Protocol, peer: SocketAddress) -> Protocol? {
    guard let wrapper = protocolType.init() as? ProtocolWrapper else { return nil }
    wrapper.wrap(inner)
    wrapper.factory = self
    return wrapper
  }

  /// Starts the wrapped factory too.
  open override func startFactory() { wrappedFactory.doStart() }

  /// Stops the wrapped factory too.
  open override func stopFactory() { wrappedFactory.doStop() }
}
