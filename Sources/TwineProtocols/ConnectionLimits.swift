import TwineCore

/// The counts behind ``ConnectionLimitFactory``: connections open in total and per peer
/// address, against their limits. Thread-safe (one lock, taken once when a connection
/// starts and once when it ends, never per read or write), so the factories of every
/// reactor in a group can share one and the limits hold across them exactly.
///
/// ```swift
/// let limits = ConnectionLimits(maxConnections: 100, maxPerPeer: 5)
/// // on each reactor: ConnectionLimitFactory(wrapping: Factory(Echo.self), limits: limits)
/// ```
public final class ConnectionLimits: Sendable {
  /// Most connections open at once; nil for no limit.
  public let maxConnections: Int?
  /// Most connections open at once from one peer IP address; nil for no limit.
  public let maxPerPeer: Int?

  private struct Counts {
    var open = 0
    var perPeer: [String: Int] = [:]
  }
  private let counts = LockedValue(Counts())

  /// Makes limits with nothing open yet.
  public init(maxConnections: Int? = nil, maxPerPeer: Int? = nil) {
    self.maxConnections = maxConnections
    self.maxPerPeer = maxPerPeer
  }

  /// Connections open now.
  public var open: Int { counts.withLock { $0.open } }

  /// Open connections from `host` (an IP address as text).
  public func openConnections(from host: String) -> Int { counts.withLock { $0.perPeer[host, default: 0] } }

  /// Counts a connection from `host` in, atomically, when both limits allow it; false when one does not.
  public func admit(_ host: String) -> Bool {
    counts.withLock { counts in
      if let maxConnections, counts.open >= maxConnections { return false }
      if let maxPerPeer, counts.perPeer[host, default: 0] >= maxPerPeer { return false }
      counts.open += 1
      counts.perPeer[host, default: 0] += 1
      return true
    }
  }

  /// Counts out a connection from `host` that ``admit(_:)`` counted in.
  public func release(_ host: String) {
    counts.withLock { counts in
      counts.open -= 1
      let left = counts.perPeer[host, default: 1] - 1
      counts.perPeer[host] = left > 0 ? left : nil
    }
  }
}
