import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// The README's "Every core" example, as written there (port 0 and a stop instead of 8025
/// and no signal handlers: the test process owns its signals), so that it keeps compiling
/// and doing what the README says.
@Suite("README: every core")
struct EveryCoreExampleTests {
  @Test("the example serves, limits and reports its spread")
  func example() throws {
    let group = try ReactorGroup(threads: 0)  // 0: one reactor per core
    let counters = ConnectionCounters(stripes: group.count)  // a stripe per reactor, summed on read
    let slots = ConnectionSlots(limit: 100)  // the tutorial's limit, exact over every reactor
    let port = try group.listenTCP(0, interface: "127.0.0.1") { reactor in  // once on each reactor's thread
      CountingFactory(slots: slots, counters: counters.stripe(reactor.index))
    }
    let client = try #require(connectBlocking(port.address.port))
    #expect(waitFor { counters.live == 1 })
    close(client)
    #expect(waitFor { counters.live == 0 })
    group.stop()
    group.run()  // returns once all have stopped and their threads are joined
    #expect(counters.accepted == 1 && counters.refused == 0)
    #expect(counters.acceptedPerStripe.count == ReactorGroup.coreCount)
  }
}
