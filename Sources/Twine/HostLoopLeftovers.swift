import CLibevent

/// What a reactor over a host's base leaves behind when it goes: DNS resolvers whose
/// cancelled lookups have not called back yet, and rate-limit groups whose freed
/// bufferevents have not left them yet. Both wait on callbacks that run from the
/// base's loop; this keeps them until the host's loop has run those, then frees them.
///
/// A cancelled `evdns_getaddrinfo` still calls back, later, through the loop, and that
/// callback uses the `evdns_base`; a freed bufferevent leaves its rate-limit group in
/// libevent's finalizer, also run from the loop, and freeing a group with members aborts.
/// A reactor that owns its base runs one loop pass in its deinit; one over a host's base
/// must not run the host's loop, so this waits on it with a zero-timeout `event_base_once`
/// that checks again each turn. If the host frees its base before that, libevent drops
/// the pending `once` (running the finalizers itself) and these objects are never freed:
/// a small, bounded leak instead of a crash.
final class HostLoopLeftovers {
  private var resolvers: [Resolver]
  private var groups: [AnyObject]
  private let base: OpaquePointer
  /// Loop turns seen; the finalizers queued at shutdown have run after the first.
  private var turns = 0

  private init(resolvers: [Resolver], groups: [AnyObject], base: OpaquePointer) {
    self.resolvers = resolvers
    self.groups = groups
    self.base = base
  }

  /// Frees `resolvers` and `groups` now if nothing waits on the loop, else once the loop of `base` has run.
  static func free(resolvers: [Resolver], groups: [AnyObject], on base: OpaquePointer) {
    guard resolvers.contains(where: \.awaitingCancelledCallbacks) || !groups.isEmpty else { return }
    let retained = Unmanaged.passRetained(HostLoopLeftovers(resolvers: resolvers, groups: groups, base: base))
    retained.takeUnretainedValue().checkLater(retained: retained)
  }

  /// Schedules a check on the next loop turn; `retained` keeps this object alive until it frees itself.
  private func checkLater(retained: Unmanaged<HostLoopLeftovers>) {
    var zero = timeval()
    // If libevent cannot schedule it (out of memory), the objects stay: a leak, not a use after free.
    _ = event_base_once(
      base, -1, Int16(EV_TIMEOUT),
      { _, _, context in
        let retained = Unmanaged<HostLoopLeftovers>.fromOpaque(context!)
        retained.takeUnretainedValue().check(retained: retained)
      }, retained.toOpaque(), &zero)
  }

  private func check(retained: Unmanaged<HostLoopLeftovers>) {
    turns += 1
    // Two turns for the groups: the finalizers queued at shutdown run in the first at the latest.
    if resolvers.contains(where: \.awaitingCancelledCallbacks) || (!groups.isEmpty && turns < 2) {
      checkLater(retained: retained)
    } else {
      resolvers = []
      groups = []
      retained.release()
    }
  }
}
