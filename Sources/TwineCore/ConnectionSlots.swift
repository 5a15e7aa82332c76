import Synchronization

/// A limit on connections served at once that stays exact across threads: a connection
/// takes a slot atomically before it is served (``reserve()``) and gives it back when it
/// ends (``release()``). Shared by the factories of every reactor in a group, so
/// `--max-connections 100 --threads 4` serves at most 100 and refuses none while fewer are served.
///
/// One compare-and-swap per connection, none per read or write.
///
/// ```swift
/// let slots = ConnectionSlots(limit: 100)
/// if slots.reserve() { /* serve; slots.release() when it ends */ } else { /* refuse */ }
/// ```
public final class ConnectionSlots: Sendable {
  /// Most slots taken at once.
  public let limit: Int
  private let taken = Atomic<Int>(0)
  private let highest = Atomic<Int>(0)

  /// Makes `limit` free slots (a negative limit counts as 0: every reserve fails).
  public init(limit: Int) { self.limit = max(0, limit) }

  /// Slots taken now.
  public var inUse: Int { taken.load(ordering: .relaxed) }

  /// The most slots ever taken at once.
  public var peak: Int { highest.load(ordering: .relaxed) }

  /// Takes a slot, or returns false when all ``limit`` are taken.
  public func reserve() -> Bool {
    var current = taken.load(ordering: .relaxed)
    while current < limit {
      let (exchanged, original) = taken.weakCompareExchange(
        expected: current, desired: current + 1, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
      if exchanged {
        _ = highest.max(current + 1, ordering: .relaxed)
        return true
      }
      current = original
    }
    return false
  }

  /// Gives back a slot taken by ``reserve()``.
  public func release() {
    let before = taken.subtract(1, ordering: .acquiringAndReleasing).oldValue
    precondition(before > 0, "ConnectionSlots.release() without a reserve()")
  }
}
