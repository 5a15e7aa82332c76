import CLibevent

/// The DNS resolvers of a reactor over a host's base, kept after the reactor is gone
/// until the host's loop has run their cancelled lookups' callbacks; then freed.
///
/// A cancelled `evdns_getaddrinfo` still calls back, later, through the base's loop,
/// and that callback uses the `evdns_base`: freeing it first would be a use after
/// free. A reactor that owns its base runs one loop pass in its deinit; one over a
/// host's base must not run the host's loop, so this waits on it with a zero-timeout
/// `event_base_once` that checks again each turn. If the host frees its base before
/// that, libevent drops the pending `once` and these resolvers are never freed (a
/// small, bounded leak instead of a crash).
final class RetiredResolvers {
  private var resolvers: [Resolver]
  private let base: OpaquePointer

  private init(_ resolvers: [Resolver], base: OpaquePointer) {
    self.resolvers = resolvers
    self.base = base
  }

  /// Frees `resolvers` now if none awaits a callback, else once the loop of `base` has run them.
  static func free(_ resolvers: [Resolver], on base: OpaquePointer) {
    guard resolvers.contains(where: \.awaitingCancelledCallbacks) else { return }
    let retained = Unmanaged.passRetained(RetiredResolvers(resolvers, base: base))
    retained.takeUnretainedValue().checkLater(retained: retained)
  }

  /// Schedules a check on the next loop turn; `retained` keeps this object alive until it frees itself.
  private func checkLater(retained: Unmanaged<RetiredResolvers>) {
    var zero = timeval()
    // If libevent cannot schedule it (out of memory), the resolvers stay: a leak, not a use after free.
    _ = event_base_once(
      base, -1, Int16(EV_TIMEOUT),
      { _, _, context in
        let retained = Unmanaged<RetiredResolvers>.fromOpaque(context!)
        retained.takeUnretainedValue().check(retained: retained)
      }, retained.toOpaque(), &zero)
  }

  private func check(retained: Unmanaged<RetiredResolvers>) {
    if resolvers.contains(where: \.awaitingCancelledCallbacks) {
      checkLater(retained: retained)
    } else {
      resolvers = []
      retained.release()
    }
  }
}
