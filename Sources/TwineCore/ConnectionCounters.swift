import Synchronization

/// Counters a ``Factory`` keeps for all its connections. Transports update them;
/// any thread may read them (relaxed atomics: each value is exact, a set of
/// values read one after another is not a snapshot).
public final class ConnectionCounters: Sendable {
  private let liveCount = Atomic<Int>(0)
  private let acceptedCount = Atomic<Int>(0)
  private let refusedCount = Atomic<Int>(0)
  private let bytesInCount = Atomic<Int>(0)
  private let bytesOutCount = Atomic<Int>(0)

  /// Makes a set of counters, all zero.
  public init() {}

  /// Connections open now (built and not yet lost).
  public var live: Int { liveCount.load(ordering: .relaxed) }
  /// Connections accepted and given a protocol since the start.
  public var accepted: Int { acceptedCount.load(ordering: .relaxed) }
  /// Connections refused: by `buildProtocol` returning nil, or by a protocol that calls ``noteRefused()``.
  public var refused: Int { refusedCount.load(ordering: .relaxed) }
  /// Bytes received on all connections.
  public var bytesIn: Int { bytesInCount.load(ordering: .relaxed) }
  /// Bytes written by all connections' protocols.
  public var bytesOut: Int { bytesOutCount.load(ordering: .relaxed) }

  /// A transport got a protocol: one more accepted and live connection.
  public func noteOpened() {
    acceptedCount.add(1, ordering: .relaxed)
    liveCount.add(1, ordering: .relaxed)
  }

  /// A transport closed: one fewer live connection.
  public func noteClosed() { liveCount.subtract(1, ordering: .relaxed) }

  /// A connection was turned away.
  public func noteRefused() { refusedCount.add(1, ordering: .relaxed) }

  /// `count` bytes arrived.
  @inline(__always) public func noteBytesIn(_ count: Int) { bytesInCount.add(count, ordering: .relaxed) }

  /// `count` bytes were written.
  @inline(__always) public func noteBytesOut(_ count: Int) { bytesOutCount.add(count, ordering: .relaxed) }
}
