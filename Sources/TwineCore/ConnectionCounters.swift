import Synchronization

/// Counters a ``Factory`` keeps for all its connections. Transports update them;
/// any thread may read them (relaxed atomics: each value is exact, a set of
/// values read one after another is not a snapshot).
///
/// Striped for a ``Factory`` per reactor (a reactor group): ``init(stripes:)`` makes the
/// counters, ``stripe(_:)`` the view each reactor's factory writes through. A view writes
/// only its own stripe (its own cache lines, so reactors never contend on a shared one)
/// and reads the sum of all stripes: `live`, `accepted`, … are the totals from any view.
///
/// ```swift
/// let counters = ConnectionCounters(stripes: 4)
/// let onReactor2 = Factory(Echo.self, counters: counters.stripe(2))
/// ```
public final class ConnectionCounters: Sendable {
  /// Every stripe of this set of counters (one for plain counters), shared by all views.
  private let stripes: [Stripe]
  /// The stripe this view writes.
  private let mine: Stripe

  /// Makes a set of counters, all zero, with one stripe.
  public init() {
    mine = Stripe()
    stripes = [mine]
  }

  /// Makes counters, all zero, with `count` stripes (at least 1), one per reactor that
  /// writes them; this view writes stripe 0.
  public init(stripes count: Int) {
    stripes = (0..<max(1, count)).map { _ in Stripe() }
    mine = stripes[0]
  }

  private init(stripes: [Stripe], writing index: Int) {
    self.stripes = stripes
    mine = stripes[index]
  }

  /// How many stripes these counters have.
  public var stripeCount: Int { stripes.count }

  /// The view that writes stripe `index` (modulo ``stripeCount``) and reads the totals, like this one.
  public func stripe(_ index: Int) -> ConnectionCounters {
    ConnectionCounters(stripes: stripes, writing: ((index % stripes.count) + stripes.count) % stripes.count)
  }

  /// Connections open now (built and not yet lost).
  public var live: Int { sum { $0.live.load(ordering: .relaxed) } }
  /// Connections accepted and given a protocol since the start.
  public var accepted: Int { sum { $0.accepted.load(ordering: .relaxed) } }
  /// Connections refused: by `buildProtocol` returning nil, or by a protocol that calls ``noteRefused()``.
  public var refused: Int { sum { $0.refused.load(ordering: .relaxed) } }
  /// Bytes received on all connections.
  public var bytesIn: Int { sum { $0.bytesIn.load(ordering: .relaxed) } }
  /// Bytes written by all connections' protocols.
  public var bytesOut: Int { sum { $0.bytesOut.load(ordering: .relaxed) } }

  /// ``accepted`` of each stripe, in stripe order: how a reactor group spread its connections.
  public var acceptedPerStripe: [Int] { stripes.map { $0.accepted.load(ordering: .relaxed) } }

  /// Connections aborted because their queued output passed the hard limit (``CloseReason/bufferOverflow``).
  public var abortedForOverflow: Int { sum { $0.overflows.load(ordering: .relaxed) } }
  /// Connections (or TLS handshakes) closed because a timeout expired (``CloseReason/timedOut``).
  public var timedOut: Int { sum { $0.timeouts.load(ordering: .relaxed) } }
  /// TLS server handshakes that failed (the connection never got a protocol).
  public var tlsHandshakeFailures: Int { sum { $0.handshakeFailures.load(ordering: .relaxed) } }

  /// A connection was aborted for output past its hard limit.
  public func noteOverflowAbort() { mine.overflows.add(1, ordering: .relaxed) }

  /// A connection closed because a timeout expired.
  public func noteTimedOut() { mine.timeouts.add(1, ordering: .relaxed) }

  /// A TLS server handshake failed.
  public func noteHandshakeFailed() { mine.handshakeFailures.add(1, ordering: .relaxed) }

  /// A transport got a protocol: one more accepted and live connection.
  public func noteOpened() {
    mine.accepted.add(1, ordering: .relaxed)
    mine.live.add(1, ordering: .relaxed)
  }

  /// A transport closed: one fewer live connection.
  public func noteClosed() { mine.live.subtract(1, ordering: .relaxed) }

  /// A connection was turned away.
  public func noteRefused() { mine.refused.add(1, ordering: .relaxed) }

  /// `count` bytes arrived.
  @inline(__always) public func noteBytesIn(_ count: Int) { mine.bytesIn.add(count, ordering: .relaxed) }

  /// `count` bytes were written.
  @inline(__always) public func noteBytesOut(_ count: Int) { mine.bytesOut.add(count, ordering: .relaxed) }

  @inline(__always) private func sum(_ counter: (Stripe) -> Int) -> Int {
    var total = 0
    for stripe in stripes { total &+= counter(stripe) }
    return total
  }
}

/// One writer's counters, padded on both sides so that two stripes never share a cache
/// line (64 bytes; 128 covers adjacent-line prefetching).
private final class Stripe: Sendable {
  private let before: Padding = (0, 0, 0, 0, 0, 0, 0, 0)
  let live = Atomic<Int>(0)
  let accepted = Atomic<Int>(0)
  let refused = Atomic<Int>(0)
  let bytesIn = Atomic<Int>(0)
  let bytesOut = Atomic<Int>(0)
  let overflows = Atomic<Int>(0)
  let timeouts = Atomic<Int>(0)
  let handshakeFailures = Atomic<Int>(0)
  private let after: Padding = (0, 0, 0, 0, 0, 0, 0, 0)
  typealias Padding = (Int, Int, Int, Int, Int, Int, Int, Int)
}
