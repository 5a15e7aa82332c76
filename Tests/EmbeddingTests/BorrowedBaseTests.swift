import CLibevent
import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// Clients that echo-ping-pong `message` until `deadline`, checking every byte that comes back.
final class PingPongClients: ClientFactory {
  let message = pattern(64 << 10, seed: 7)
  var deadline = 0.0
  var rounds = 0
  var mismatches = 0
  var finished = 0
  var firstConnect: Double?

  final class Player: Protocol {
    var got: [UInt8] = []
    var clients: PingPongClients { factory as! PingPongClients }

    override func connectionMade() {
      if clients.firstConnect == nil { clients.firstConnect = monotonicNow() }
      transport.write(clients.message)
    }

    override func dataReceived(_ data: RawSpan) {
      data.withUnsafeBytes { got.append(contentsOf: $0) }
      guard got.count >= clients.message.count else { return }
      if got != clients.message { clients.mismatches += 1 }
      got.removeAll(keepingCapacity: true)
      clients.rounds += 1
      if monotonicNow() < clients.deadline {
        transport.write(clients.message)
      } else {
        transport.loseConnection()
      }
    }

    override func connectionLost(_ reason: CloseReason) { clients.finished += 1 }
  }

  init() { super.init(Player.self) }
}

// Serialized: the first test times the host's timer ticks (rate, largest gap) while the echo is busy.
@Suite("A reactor over a host's event_base", .serialized)
struct BorrowedBaseTests {
  @Test("serves echo while the host's own libevent timer keeps firing at its rate")
  func servesEchoBesideHostTimer() throws {
    let interval = 0.01
    let host = HostLoop(tickEvery: interval)
    #expect(host.eventCount == 1)
    let server = Factory(Echo.self)
    let clients = PingPongClients()
    let reactor = try Reactor(borrowing: host.base)
    let port = try listen(reactor, server)
    clients.deadline = monotonicNow() + 1.0
    for _ in 0..<4 { reactor.connectTCP("127.0.0.1", port, factory: clients) }
    #expect(host.run { clients.finished == 4 && server.counters.live == 0 })
    let busyFrom = try #require(clients.firstConnect)
    let busyTo = monotonicNow()
    let during = host.ticks(from: busyFrom, to: busyTo)
    let expected = (busyTo - busyFrom) / interval
    #expect(clients.mismatches == 0)
    #expect(clients.rounds > 4, "the echo was busy: \(clients.rounds) round trips of 64 KiB")
    #expect(Double(during.count) >= expected * 0.3, "\(during.count) host ticks in \(busyTo - busyFrom) s")
    #expect(largestGap([busyFrom] + during + [busyTo]) < 0.5)
    #expect(server.counters.accepted == 4 && server.counters.live == 0)
    reactor.shutdown()
    event_base_loop(host.base, EVLOOP_NONBLOCK)  // runs libevent's finalizers of freed bufferevents
    #expect(host.eventCount == 1, "only the host's timer is left")
    let ticksBefore = host.ticks.count
    #expect(host.run { host.ticks.count >= ticksBefore + 5 })
  }

  @Test("shutdown removes every event Twine added; the host's events stay registered and keep firing")
  func shutdownLeavesHostEvents() throws {
    let host = HostLoop(tickEvery: 0.01)
    host.addWakeEvent()
    let hostEvents = host.eventCount
    #expect(hostEvents == 2)
    var lost: [CloseReason] = []
    do {
      let reactor = try Reactor(borrowing: host.base)
      let port = try listen(reactor, Factory(Echo.self))
      let clients = ClientMaker()
      clients.configure = { client in
        client.message = pattern(1000)
        client.done = { lost.append($0.lostReason!) }
      }
      reactor.connectTCP("127.0.0.1", port, factory: clients)
      let pending = reactor.callLater(60) {}
      #expect(host.run { clients.clients.first?.received.count == 1000 })
      // Twine's: the listener, both ends' read events, the pending timer, the cross-thread eventfd.
      #expect(host.eventCount >= hostEvents + 5)
      reactor.shutdown()
      // libevent frees a bufferevent's (already removed) events through finalizers on the next loop pass.
      event_base_loop(host.base, EVLOOP_NONBLOCK)
      #expect(host.eventCount == hostEvents)
      #expect(!pending.isActive)
      #expect(lost == [.reactorShutdown])
      let (ticks, wakes) = (host.ticks.count, host.wakes)
      host.wake()
      #expect(host.run { host.wakes == wakes + 1 && host.ticks.count >= ticks + 3 })
    }  // the reactor is gone: the base must still be the host's, whole
    #expect(host.eventCount == hostEvents)
    let ticks = host.ticks.count
    host.wake()
    #expect(host.run { host.wakes >= 2 && host.ticks.count >= ticks + 3 })
  }

  @Test("stop() while the host dispatches never breaks the host's loop")
  func stopDoesNotBreakHostLoop() throws {
    let host = HostLoop(tickEvery: 0.01)
    let reactor = try Reactor(borrowing: host.base)
    var stopped = false
    reactor.callLater(0.02) {
      reactor.stop()
      stopped = true
    }
    host.exitAfterTicks = 20
    event_base_loop(host.base, 0)  // the host's event_base_dispatch, ended by its own timer
    #expect(stopped)
    #expect(event_base_got_break(host.base) == 0)
    #expect(host.ticks.count >= 20)
  }

  @Test("run() on a borrowed base runs it when asked, until stop(); the base stays the host's")
  func runWhenAsked() throws {
    let host = HostLoop(tickEvery: 0.01)
    let reactor = try Reactor(borrowing: host.base)
    reactor.callLater(0.15) { reactor.stop() }
    run(reactor)
    #expect(host.ticks.count >= 3, "the host's timer fired while Twine ran the loop")
    #expect(host.eventCount == 1)
    let ticks = host.ticks.count
    #expect(host.run { host.ticks.count >= ticks + 3 })
  }

  @Test("installSignalHandlers throws on a borrowed base: signals are the host's")
  func noSignalHandlers() throws {
    let host = HostLoop(tickEvery: 1)
    let reactor = try Reactor(borrowing: host.base)
    #expect {
      try reactor.installSignalHandlers()
    } throws: { error in
      guard case TwineError.borrowedBase = error else { return false }
      return "\(error)".contains("host")
    }
    #expect(host.eventCount == 2, "the host's timer and Twine's cross-thread door; no signal events")
  }

  @Test("a host lookup in flight when the reactor goes is finished by the host's loop, its DNS base freed")
  func lookupInFlightWhenReactorGoes() throws {
    let silent = SilentNameserver()
    let port = silent.port
    let host = HostLoop(tickEvery: 0.01)
    let clients = ClientMaker()
    do {
      let reactor = try Reactor(borrowing: host.base)
      try reactor.useNameserver("127.0.0.1:\(port)")
      reactor.connectTCP("twine-test.invalid", 80, factory: clients)
      let ticks = host.ticks.count
      #expect(host.run { host.ticks.count >= ticks + 3 })
      #expect(host.eventCount > 1, "the resolver's socket is registered")
    }
    #expect(clients.failed == [.reactorShutdown])
    #expect(host.run(timeout: 10) { host.eventCount == 1 }, "the DNS base was freed from the host's loop")
  }

  @Test("a rate-limit group of a reactor that goes is freed from the host's loop, after its bufferevents left it")
  func rateLimitGroupWhenReactorGoes() throws {
    final class GroupedEcho: Protocol {
      var group: RateLimitGroup?
      override func connectionMade() { if let group { transport.joinRateLimitGroup(group) } }
      override func dataReceived(_ data: RawSpan) { transport.write(data) }
    }
    let host = HostLoop(tickEvery: 0.01)
    let group = RateLimitGroup(RateLimit(readBytesPerSecond: 1 << 20))
    let server = Factory { _ in
      let echo = GroupedEcho()
      echo.group = group
      return echo
    }
    let clients = ClientMaker()
    do {
      let reactor = try Reactor(borrowing: host.base)
      let port = try listen(reactor, server)
      clients.configure = { client in
        client.message = pattern(1000)
        client.expecting = .max  // stays open: the reactor's going closes it
      }
      reactor.connectTCP("127.0.0.1", port, factory: clients)
      #expect(host.run { clients.clients.first?.received.count == 1000 })
      #expect(host.eventCount > 1)
    }  // shutdown frees the member bufferevents; libevent finalizes them on the host's loop
    #expect(clients.clients.first?.lostReason == .reactorShutdown)
    #expect(host.run(timeout: 10) { host.eventCount == 1 }, "the group's refill timer went with the group")
    let ticks = host.ticks.count
    #expect(host.run { host.ticks.count >= ticks + 3 })
  }

  @Test("neither shutdown nor the reactor's deinit runs a pass of the host's loop")
  func shutdownNeverRunsHostLoop() throws {
    let host = HostLoop(tickEvery: 60)
    host.addWakeEvent()
    do {
      let reactor = try Reactor(borrowing: host.base)
      let port = try listen(reactor, Factory(Echo.self))
      let clients = ClientMaker()
      clients.configure = { $0.message = pattern(10) }
      reactor.connectTCP("127.0.0.1", port, factory: clients)
      #expect(host.run { clients.clients.first?.received.count == 10 })
      host.wake()  // the host's event is ready: any pass of the loop would run it
      reactor.shutdown()
      #expect(host.wakes == 0, "shutdown ran the host's loop")
    }
    #expect(host.wakes == 0, "deinit ran the host's loop")
    #expect(host.run { host.wakes == 1 })
  }
}
