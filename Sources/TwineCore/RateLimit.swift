/// A bandwidth limit: token buckets for reading and writing (libevent's rate limits).
///
/// Rates are bytes per second; `nil` leaves that direction unlimited. Each bucket
/// holds at most `burst` bytes (one second's worth by default) and refills every tick.
public struct RateLimit: Sendable, Hashable {
  /// Bytes per second read from the peer, or nil for no limit.
  public var readBytesPerSecond: Int?
  /// Bytes per second written to the peer, or nil for no limit.
  public var writeBytesPerSecond: Int?
  /// Most bytes either bucket may hold; nil for one second's worth of its rate.
  public var burst: Int?
  /// How often the buckets refill, in seconds.
  public var tick: Double

  /// Makes a limit; `tick` is the refill period (default 0.1 s).
  public init(readBytesPerSecond: Int? = nil, writeBytesPerSecond: Int? = nil, burst: Int? = nil, tick: Double = 0.1) {
    self.readBytesPerSecond = readBytesPerSecond
    self.writeBytesPerSecond = writeBytesPerSecond
    self.burst = burst
    self.tick = tick
  }
}

/// Connections that share one ``RateLimit`` between them (libevent's rate-limit groups):
/// e.g. every connection of a factory together reads at most N bytes per second.
/// Make one, then `transport.joinRateLimitGroup(group)` for each member.
public final class RateLimitGroup: Sendable {
  /// The limit all members share.
  public let limit: RateLimit

  /// Makes a group whose members share `limit`.
  public init(_ limit: RateLimit) { self.limit = limit }
}
