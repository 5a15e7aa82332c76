/// The reactor's listening ports, for tools that look at all of them (metrics).
extension Reactor {
  /// Every port listening now, ordered by address.
  public var listeningPorts: [ListeningPort] {
    ports.values.sorted { $0.address.description < $1.address.description }
  }

  /// Stream connections open now (TCP, UNIX-domain and TLS, handshaking ones included), of every factory.
  public var connectionCount: Int { connections.count }
}
