import CLibevent

/// libevent token-bucket configurations and rate-limit groups, made from ``RateLimit`` values.
enum TokenBuckets {
  /// What "no limit" becomes: far above any real rate, within what libevent accepts.
  static let unlimited = Int(Int32.max)

  /// A new `ev_token_bucket_cfg` for `limit` (the caller frees it), or nil if libevent refuses it.
  static func config(_ limit: RateLimit) -> OpaquePointer? {
    let tick = max(0.001, limit.tick)
    func perTick(_ rate: Int?) -> Int {
      guard let rate else { return unlimited }
      return min(unlimited, max(1, Int((Double(rate) * tick).rounded())))
    }
    func burst(_ rate: Int?) -> Int {
      guard let rate else { return unlimited }
      return min(unlimited, max(perTick(rate), limit.burst ?? rate))
    }
    var tv = timeval(tv_sec: Int(tick), tv_usec: Int((tick - tick.rounded(.down)) * 1_000_000))
    return ev_token_bucket_cfg_new(
      perTick(limit.readBytesPerSecond), burst(limit.readBytesPerSecond),
      perTick(limit.writeBytesPerSecond), burst(limit.writeBytesPerSecond), &tv)
  }
}

/// The libevent side of one ``RateLimitGroup`` on one reactor: owns the group and its configuration.
final class SharedRateLimit {
  let group: OpaquePointer
  private let config: OpaquePointer

  init?(_ limit: RateLimit, base: OpaquePointer) {
    guard let config = TokenBuckets.config(limit) else { return nil }
    guard let group = bufferevent_rate_limit_group_new(base, config) else {
      ev_token_bucket_cfg_free(config)
      return nil
    }
    self.config = config
    self.group = group
  }

  /// Freed after every member bufferevent (the reactor's shutdown closes connections first).
  deinit {
    bufferevent_rate_limit_group_free(group)
    ev_token_bucket_cfg_free(config)
  }
}
