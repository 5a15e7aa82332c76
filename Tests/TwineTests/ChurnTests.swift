import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// How many `CountedEcho`s of one test are alive, to find leaked protocols.
final class LiveCount {
  var value = 0
}

/// An echo that counts itself in its test's `LiveCount` while it exists.
final class CountedEcho: Protocol {
  let live: LiveCount
  init(live: LiveCount) {
    self.live = live
    super.init()
    live.value += 1
  }
  required convenience init() { self.init(live: LiveCount()) }
  deinit { live.value -= 1 }
  override func dataReceived(_ data: RawSpan) { transport.write(data) }
}

@Suite("Connection churn")
struct ChurnTests {
  @Test("10,000 connect/echo/disconnect cycles: counters exact, nothing left alive")
  func tenThousandCycles() throws {
    let total = 10_000
    let inFlight = 50
    let live = LiveCount()
    do {
      let reactor = try Reactor()
      let server = Factory { _ in CountedEcho(live: live) }
      let port = try listen(reactor, server)
      let clients = ClientMaker()
      var started = 0
      var finished = 0
      var clean = 0
      func startOne() {
        started += 1
        // A loaded CI machine (the whole suite under ASan on 2 cores) can leave SYNs waiting in a full
        // accept queue for the kernel's retransmits (1, 3, 7, 15, 31 s): give them time, as a user would.
        reactor.connectTCP("127.0.0.1", port, factory: clients, timeout: 120)
      }
      clients.configure = { client in
        client.message = [UInt8(truncatingIfNeeded: started)]
        client.expecting = 1
        client.done = { client in
          finished += 1
          if client.received.count == 1 && client.lostReason == .closedByUs { clean += 1 }
          clients.clients.removeAll { $0 === client }
          if started < total {
            startOne()
          } else if finished == total {
            reactor.stop()
          }
        }
      }
      clients.onFailure = { _ in
        finished += 1
        if started < total { startOne() }
      }
      for _ in 0..<inFlight { startOne() }
      run(reactor, timeout: 300)
      clients.configure = { _ in }  // break the test's own closure ↔ factory cycles
      clients.onFailure = { _ in }
      #expect(finished == total)
      #expect(clean == total)
      #expect(clients.failed.isEmpty)
      #expect(server.counters.accepted == total)
      #expect(server.counters.bytesIn == total && server.counters.bytesOut == total)
      #expect(reactor.connections.isEmpty)
      #expect(server.counters.live == 0)
    }
    #expect(live.value == 0, "protocols leaked")
  }
}
