/// A port a ``ReactorGroup`` listens on with all its reactors: one ``ListeningPort`` per
/// reactor (``AcceptDistribution/reusePort``), or one on reactor 0 that hands sockets to
/// the others (``AcceptDistribution/roundRobin``). Usable from any thread.
public final class GroupListeningPort: Sendable {
  /// The bound address; its port is the real one when 0 was asked for.
  public let address: SocketAddress
  /// How accepted connections are spread over the reactors.
  public let distribution: AcceptDistribution
  /// The listening sockets, each on its reactor.
  private let ports: [ThreadBound<ListeningPort>]
  /// Round robin: the factories of the reactors the acceptor hands sockets to.
  private let targets: [ThreadBound<Factory>]

  init(
    address: SocketAddress, distribution: AcceptDistribution, ports: [ThreadBound<ListeningPort>],
    targets: [ThreadBound<Factory>]
  ) {
    self.address = address
    self.distribution = distribution
    self.ports = ports
    self.targets = targets
  }

  /// Closes every listening socket of the port and waits until they are closed; open
  /// connections stay open. Any thread but a reactor's own. Idempotent.
  public func stopListening() {
    Self.stop(ports, targets)
  }

  /// Stops `ports` and the round-robin `targets`' factories, each on its own reactor
  /// (a reactor that has shut down stopped them already).
  static func stop(_ ports: [ThreadBound<ListeningPort>], _ targets: [ThreadBound<Factory>]) {
    for port in ports {
      try? port.owner.perform { _ in port.get().stopListening() }
    }
    for target in targets {
      try? target.owner.perform { _ in
        let factory = target.get()
        if factory.numPorts > 0 { factory.doStop() }
      }
    }
  }
}
