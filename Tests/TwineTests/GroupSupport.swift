import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TutorialServers

@testable import Twine

/// What the server protocols of one reactor-group test saw, from every reactor's thread.
final class GroupStats: Sendable {
  /// Callbacks that ran on another thread than their reactor's.
  let wrongThread = Atomic<Int>(0)
  /// `connectionMade` calls.
  let made = Atomic<Int>(0)
  /// `connectionLost` calls.
  let lost = Atomic<Int>(0)
  /// Probes alive now (init minus deinit).
  let alive = Atomic<Int>(0)
  /// Each probe's close reasons, by probe number.
  let reasons = LockedValue<[Int: [CloseReason]]>([:])
  /// Probes numbered from 0.
  let numbers = Atomic<Int>(0)
}

/// An echo that checks every callback runs on its own reactor's thread and counts itself.
final class ThreadProbe: Protocol {
  var home: ReactorThread?
  var stats: GroupStats?
  private var number = -1

  static func make(_ home: ReactorThread, _ stats: GroupStats) -> ThreadProbe {
    let probe = ThreadProbe()
    probe.home = home
    probe.stats = stats
    probe.number = stats.numbers.add(1, ordering: .relaxed).oldValue
    stats.alive.add(1, ordering: .relaxed)
    return probe
  }

  deinit { stats?.alive.subtract(1, ordering: .relaxed) }

  private func check() {
    if home?.isCurrent != true { stats?.wrongThread.add(1, ordering: .relaxed) }
  }

  override func connectionMade() {
    check()
    stats?.made.add(1, ordering: .relaxed)
  }

  override func dataReceived(_ data: RawSpan) {
    check()
    transport.write(data)
  }

  override func connectionLost(_ reason: CloseReason) {
    check()
    stats?.lost.add(1, ordering: .relaxed)
    let number = number
    stats?.reasons.withLock { $0[number, default: []].append(reason) }
  }
}

/// Raises this process's soft limit of open files to the hard one.
func raiseFileLimit() {
  let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
  var limit = rlimit()
  guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
  limit.rlim_cur = limit.rlim_max
  setrlimit(resource, &limit)
}

/// Polls `condition` on the client `reactor` every 10 ms and stops the reactor once it holds.
func stop(_ reactor: Reactor, when condition: @escaping () -> Bool) -> LoopingCall {
  let poll = LoopingCall(reactor) { if condition() { reactor.stop() } }
  poll.start(interval: 0.01)
  return poll
}

/// The process's open descriptors (the entries of /proc/self/fd).
func descriptorsOpen() -> Set<String> {
  guard let dir = opendir("/proc/self/fd") else { return [] }
  defer { closedir(dir) }
  var names: Set<String> = []
  while let entry = readdir(dir) {
    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    if name != "." && name != ".." { names.insert(name) }
  }
  names.remove(String(dirfd(dir)))
  return names
}

/// What descriptor `name` of this process is (`socket:[1234]`, `anon_inode:[eventfd]`).
func describeDescriptor(_ name: String) -> String {
  var buffer = [CChar](repeating: 0, count: 256)
  let count = readlink("/proc/self/fd/\(name)", &buffer, buffer.count - 1)
  return count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
}
