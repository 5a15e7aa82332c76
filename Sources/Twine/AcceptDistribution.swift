/// How a ``ReactorGroup`` spreads the connections of one port over its reactors.
public enum AcceptDistribution: Sendable, Hashable {
  /// One listening socket per reactor, all bound to the port with `SO_REUSEPORT`: the
  /// kernel picks a socket for each new connection by a hash of its addresses (Linux 3.9+;
  /// nginx's `reuseport`). No thread hands anything to another. TCP and TLS.
  case reusePort
  /// One listening socket on reactor 0, which hands each accepted socket to the next
  /// reactor in turn through that reactor's cross-thread door (memcached's model): exact
  /// balance, one wake-up of the target per connection; works for every socket family
  /// (UNIX-domain ports always use it). Plain TCP and UNIX; not TLS.
  case roundRobin

  /// What this platform does best: ``reusePort`` (Twine runs on Linux only).
  public static let platformDefault = AcceptDistribution.reusePort
}
