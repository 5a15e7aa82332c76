/// What one ``ListeningPort`` saw, apart from its factory's `ConnectionCounters` (which
/// add up every port the factory serves). Read and written on the reactor's thread only.
public final class ListenerStats {
  /// Sockets accepted (TLS ones before their handshake).
  public internal(set) var accepted = 0
  /// Accepted sockets the factory refused (`buildProtocol` returned nil); closed at once.
  public internal(set) var refused = 0
  /// Times `accept` failed (EMFILE, ENFILE, ENOBUFS, ENOMEM), each pausing accepts briefly.
  public internal(set) var acceptErrors = 0

  init() {}
}
