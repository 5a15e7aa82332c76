import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TutorialServers

@testable import Twine

/// A reactor group serving real loopback clients: connections pinned to their reactor,
/// counters exact over the stripes, a clean stop.
@Suite("Reactor group")
struct ReactorGroupTests {
  struct Setup: CustomTestStringConvertible, Sendable {
    let threads: Int
    let distribution: AcceptDistribution
    var testDescription: String { "\(threads) reactors, \(distribution)" }
  }

  @Test(
    "10,000 connect/echo/close cycles: counters exact, callbacks on their reactor's thread, nothing left alive",
    arguments: [
      Setup(threads: 2, distribution: .reusePort), Setup(threads: 4, distribution: .reusePort),
      Setup(threads: 4, distribution: .roundRobin),
    ])
  func tenThousandCycles(_ setup: Setup) throws {
    let total = 10_000
    let inFlight = 40
    let message = Array("sixteen bytes..!".utf8)
    let stats = GroupStats()
    let group = try ReactorGroup(threads: setup.threads)
    let counters = ConnectionCounters(stripes: group.count)
    let port = try group.listenTCP(0, interface: "127.0.0.1", distribution: setup.distribution) { home in
      Factory(counters: counters.stripe(home.index)) { _ in ThreadProbe.make(home, stats) }
    }

    let client = try Reactor()
    let clients = ClientMaker()
    var started = 0
    var clean = 0
    var failed = 0
    func startOne() {
      started += 1
      client.connectTCP("127.0.0.1", port.address.port, factory: clients, timeout: 120)  // loaded CI: SYN retransmits
    }
    clients.configure = { one in
      one.message = message
      one.expecting = message.count
      one.done = { one in
        if one.received == message && one.lostReason == .closedByUs { clean += 1 }
        clients.clients.removeAll { $0 === one }
        if started < total { startOne() }
      }
    }
    clients.onFailure = { _ in
      failed += 1
      if started < total { startOne() }
    }
    for _ in 0..<inFlight { startOne() }
    // Done once every client finished and every server connection closed too.
    let poll = stop(client) { clean + failed == total && counters.live == 0 }
    run(client, timeout: 300)
    poll.stop()
    clients.configure = { _ in }  // break the test's own closure ↔ factory cycles
    clients.onFailure = { _ in }

    #expect(clean == total)
    #expect(failed == 0)
    #expect(counters.accepted == total)
    #expect(counters.live == 0)
    #expect(counters.refused == 0)
    #expect(counters.bytesIn == total * message.count)
    #expect(counters.bytesOut == total * message.count)
    #expect(stats.made.load(ordering: .relaxed) == total)
    #expect(stats.lost.load(ordering: .relaxed) == total)
    #expect(stats.wrongThread.load(ordering: .relaxed) == 0)
    let spread = counters.acceptedPerStripe
    #expect(spread.count == setup.threads)
    #expect(spread.reduce(0, +) == total)
    if setup.distribution == .roundRobin {
      #expect(spread.allSatisfy { $0 == total / setup.threads }, "round robin is exact: \(spread)")
    } else {
      // The kernel's hash: every reactor gets a fair share (the ±10 % target is checked by make bench).
      #expect(spread.allSatisfy { $0 > total / setup.threads / 2 }, "\(spread)")
    }
    group.stop()
    group.run()
    #expect(stats.alive.load(ordering: .relaxed) == 0, "no protocol outlives its connection")
  }

  @Test(
    "stopping the group with connections on every reactor: each hears .reactorShutdown once, threads joined, no fd left",
    arguments: [AcceptDistribution.reusePort, .roundRobin])
  func stopClosesEverything(_ distribution: AcceptDistribution) throws {
    let threads = 4
    var quiet = false
    var leftover: [String] = []
    // Other suites open and close descriptors meanwhile: tries for up to a minute, any one
    // quiet enough passes (a real leak leaves descriptors on every try).
    let deadline = monotonicNow() + 60
    while !quiet && monotonicNow() < deadline {
      let before = descriptorsOpen()
      let stats = GroupStats()
      var spread: [Int] = []
      do {
        let group = try ReactorGroup(threads: threads)
        let counters = ConnectionCounters(stripes: group.count)
        let port = try group.listenTCP(0, interface: "127.0.0.1", distribution: distribution) { home in
          Factory(counters: counters.stripe(home.index)) { _ in ThreadProbe.make(home, stats) }
        }
        var sockets: [Int32] = []
        // Until every reactor holds at least two (the kernel's hash decides for reusePort).
        while sockets.count < 200 && (counters.acceptedPerStripe.min() ?? 0) < 2 {
          for _ in 0..<threads { sockets.append(try #require(connectBlocking(port.address.port))) }
          #expect(waitFor { counters.live == sockets.count })
        }
        spread = counters.acceptedPerStripe
        group.stop()
        group.run()  // joins every thread
        #expect(stats.alive.load(ordering: .relaxed) == 0)
        #expect(stats.lost.load(ordering: .relaxed) == sockets.count)
        let reasons = stats.reasons.withLock { $0 }
        #expect(reasons.count == sockets.count)
        #expect(reasons.values.allSatisfy { $0 == [.reactorShutdown] }, "\(reasons)")
        // The peers see the end: EOF (or a reset) on every client socket.
        for fd in sockets {
          var byte: UInt8 = 0
          #expect(recv(fd, &byte, 1, 0) <= 0)
          close(fd)
        }
      }
      #expect(spread.allSatisfy { $0 >= 2 }, "connections on every reactor: \(spread)")
      let after = descriptorsOpen()
      quiet = after == before
      if !quiet {
        leftover = after.subtracting(before).map { "\($0)→\(describeDescriptor($0))" }.sorted()
        usleep(20_000)
      }
    }
    #expect(quiet, "the group's descriptors were all closed; left on the last try: \(leftover)")
  }

  @Test(
    "group API: next() turns round-robin, perform runs on the reactor's thread, callFromThread after stop is refused")
  func groupAPI() throws {
    let group = try ReactorGroup(threads: 3)
    #expect(group.count == 3)
    let picked = (0..<6).map { _ in group.next().index }
    #expect(picked == [0, 1, 2, 0, 1, 2])
    for member in group.reactors {
      let onThread = try member.perform { _ in member.isCurrent }
      #expect(onThread)
      #expect(!member.isCurrent)
    }
    // A timer on a chosen reactor fires on its thread.
    let fired = Rendezvous<Bool>()
    let target = group.reactors[2]
    #expect(target.callFromThread { reactor in reactor.callLater(0.01) { fired.put(target.isCurrent) } })
    #expect(fired.wait())
    group.stop()
    group.run()
    #expect(!group.reactors[0].callFromThread { _ in })
    #expect(throws: TwineError.self) { try group.reactors[1].perform { _ in 1 } }
  }

  @Test("a port another socket holds without SO_REUSEPORT: the group throws and no reactor listens")
  func bindFailureUndoes() throws {
    let holder = try Syscall.socket(AF_INET, .stream)
    defer { try? Syscall.close(holder) }
    try Syscall.bind(holder, NumericAddress(host: "127.0.0.1", port: 0)!)
    try Syscall.listen(holder, backlog: 4)
    let taken = try Syscall.localAddress(holder).port
    let group = try ReactorGroup(threads: 2)
    #expect(throws: TwineError.self) {
      try group.listenTCP(taken, interface: "127.0.0.1") { _ in Factory(Echo.self) }
    }
    let listening = try group.reactors.map { member in try member.perform { $0.ports.count } }
    #expect(listening == [0, 0])
    group.stop()
    group.run()
  }
}

/// A blocking TCP socket connected to 127.0.0.1:`port`, or nil.
func connectBlocking(_ port: Int) -> Int32? {
  guard let fd = try? Syscall.socket(AF_INET, .stream), let address = NumericAddress(host: "127.0.0.1", port: port)
  else { return nil }
  let flags = fcntl(fd, F_GETFL)
  _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
  guard (try? Syscall.connect(fd, address)) != nil else {
    close(fd)
    return nil
  }
  return fd
}

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Polls `condition` every 5 ms for up to `timeout` seconds.
func waitFor(timeout: Double = 30, _ condition: () -> Bool) -> Bool {
  var waited = 0.0
  while !condition() {
    if waited > timeout { return false }
    usleep(5000)
    waited += 0.005
  }
  return true
}
