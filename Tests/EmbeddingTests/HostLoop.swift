import CLibevent
import Glibc
import LoopbackTestSupport

/// A stand-in for a C host: its own `event_base`, made with plain libevent, its own
/// persistent timer counting ticks, and its own loop (`event_base_loop`) run by the test.
final class HostLoop {
  let base: OpaquePointer
  /// When each tick of the host's timer fired, on the monotonic clock.
  private(set) var ticks: [Double] = []
  private var timer: OpaquePointer?
  /// After this many ticks the host's timer calls `event_base_loopexit` (for runs of `event_base_dispatch`).
  var exitAfterTicks = Int.max
  /// How often the host's own read event (``addWakeEvent()``) fired.
  private(set) var wakes = 0
  private var wakeFD: Int32 = -1
  private var wakeEvent: OpaquePointer?

  /// Makes the base and starts a timer that ticks every `interval` seconds. Ignores
  /// SIGPIPE, as a host that lets Twine write must (Twine leaves signals to the host).
  init(tickEvery interval: Double) {
    signal(SIGPIPE, SIG_IGN)
    base = event_base_new()!
    let context = Unmanaged.passUnretained(self).toOpaque()
    timer = event_new(
      base, -1, Int16(EV_PERSIST),
      { _, _, context in Unmanaged<HostLoop>.fromOpaque(context!).takeUnretainedValue().tick() }, context)
    var tv = timeval(tv_sec: 0, tv_usec: Int(interval * 1_000_000))
    event_add(timer, &tv)
  }

  deinit {
    if let timer { event_free(timer) }
    if let wakeEvent {
      event_free(wakeEvent)
      close(wakeFD)
    }
    event_base_free(base)
  }

  private func tick() {
    ticks.append(monotonicNow())
    if ticks.count == exitAfterTicks { event_base_loopexit(base, nil) }
  }

  /// Adds a second host event: a persistent read event on an eventfd, fired by ``wake()``.
  func addWakeEvent() {
    wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    let context = Unmanaged.passUnretained(self).toOpaque()
    wakeEvent = event_new(
      base, wakeFD, Int16(EV_READ | EV_PERSIST),
      { fd, _, context in
        var count: UInt64 = 0
        _ = read(fd, &count, MemoryLayout<UInt64>.size)
        Unmanaged<HostLoop>.fromOpaque(context!).takeUnretainedValue().wakes += 1
      }, context)
    event_add(wakeEvent, nil)
  }

  /// Makes the host's read event fire on the next loop pass.
  func wake() {
    var one: UInt64 = 1
    _ = write(wakeFD, &one, MemoryLayout<UInt64>.size)
  }

  /// How many (non-internal) events are registered on the base: added, pending or active.
  var eventCount: Int {
    var count = 0
    event_base_foreach_event(
      base,
      { _, _, context in
        context!.assumingMemoryBound(to: Int.self).pointee += 1
        return 0
      }, &count)
    return count
  }

  /// Runs the host's loop, one pass at a time, until `condition` holds (true) or `timeout` passes (false).
  /// The host's timer wakes the loop at least once per tick, so the condition is checked often.
  func run(timeout: Double = 20, until condition: () -> Bool) -> Bool {
    let end = monotonicNow() + timeout
    while !condition() {
      if monotonicNow() > end { return false }
      event_base_loop(base, EVLOOP_ONCE)
    }
    return true
  }

  /// Ticks in the time range `from...to`.
  func ticks(from: Double, to: Double) -> [Double] { ticks.filter { $0 >= from && $0 <= to } }
}

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The largest gap between consecutive times in `times` (0 for fewer than two).
func largestGap(_ times: [Double]) -> Double {
  zip(times.dropFirst(), times).map { $0 - $1 }.max() ?? 0
}

/// A UDP socket on loopback that never answers: a nameserver whose lookups stay in flight.
final class SilentNameserver {
  let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
  private(set) var port = 0

  init() {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
        bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
      }
    }
    if bound { port = Int(UInt16(bigEndian: address.sin_port)) }
  }

  deinit { close(fd) }
}
