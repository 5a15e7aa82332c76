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
  private let overflowCount = Atomic<Int>(0)
  private let timedOutCount = Atomic<Int>(0)
  private let handshakeFailureCount = Atomic<Int>(0)

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

  /// Connections aborted because their queued output passed the hard limit (``CloseReason/bufferOverflow``).
  public var abortedForOverflow: Int { overflowCount.load(ordering: .relaxed) }
  /// Connections (or TLS handshakes) closed because a timeout expired (``CloseReason/timedOut``).
  public var timedOut: Int { timedOutCount.load(ordering: .relaxed) }
  /// TLS server handshakes that failed (the connection never got a protocol).
  public var tlsHandshakeFailures: Int { handshakeFailureCount.load(ordering: .relaxed) }

  /// A connection was aborted for output past its hard limit.
  public func noteOverflowAbort() { overflowCount.add(1, ordering: .relaxed) }

  /// A connection closed because a timeout expired.
  public func noteTimedOut() { timedOutCount.add(1, ordering: .relaxed) }

  /// A TLS server handshake failed.
  public func noteHandshakeFailed() { handshakeFailureCount.add(1, ordering: .relaxed) }

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
