/// The reactor's listening ports, for tools that look at all of them (metrics).
extension Reactor {
  /// Every port listening now, ordered by address.
  public var listeningPorts: [ListeningPort] {
    ports.values.sorted { $0.address.description < $1.address.description }
  }
}
