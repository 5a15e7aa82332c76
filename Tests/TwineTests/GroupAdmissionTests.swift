import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TutorialServers
import TwineProtocols

@testable import Twine

/// Connections being served right now across every reactor, and the most ever at once.
final class PeakTracker: Sendable {
  let serving = Atomic<Int>(0)
  let peak = Atomic<Int>(0)
}

/// Counts its connection as served while an admitted protocol (not a refusal) holds it:
/// in after the slot was taken, out before the slot is given back, so the count never
/// runs ahead of the admission it watches.
final class PeakWrapper: ProtocolWrapper {
  var tracker: PeakTracker?
  var admitted: (Protocol) -> Bool = { _ in false }
  private var counted = false

  override func connectionMade() {
    if let tracker, admitted(wrapped) {
      counted = true
      let now = tracker.serving.add(1, ordering: .relaxed).newValue
      _ = tracker.peak.max(now, ordering: .relaxed)
    }
    super.connectionMade()
  }

  override func connectionLost(_ reason: CloseReason) {
    if counted { tracker?.serving.subtract(1, ordering: .relaxed) }
    super.connectionLost(reason)
  }
}

/// Wraps each protocol of `factory` in a ``PeakWrapper``.
final class PeakFactory: WrappingFactory {
  let tracker: PeakTracker
  let admitted: (Protocol) -> Bool

  init(wrapping factory: Factory, tracker: PeakTracker, admitted: @escaping (Protocol) -> Bool) {
    self.tracker = tracker
    self.admitted = admitted
    super.init(wrapping: factory, wrapperType: PeakWrapper.self)
  }

  override func makeWrapper(around inner: Protocol, peer: SocketAddress) -> Protocol? {
    let wrapper = super.makeWrapper(around: inner, peer: peer) as? PeakWrapper
    wrapper?.tracker = tracker
    wrapper?.admitted = admitted
    return wrapper
  }
}

/// What a burst of clients saw.
struct Burst {
  var served = 0
  var refusedWithText = 0
  var other: [String] = []
}

/// Connects `count` clients at once to `port` and holds them; once all were accepted and
/// the refused ones closed, every held one sends a ping and must get it back; then all leave.
/// Returns once the server counts nothing live.
func burst(_ count: Int, port: Int, refusal: [UInt8], counters: ConnectionCounters, refused expected: Int) throws
  -> Burst
{
  let client = try Reactor()
  let clients = ClientMaker()
  let acceptedBefore = counters.accepted
  var ended = 0
  clients.configure = { one in one.done = { _ in ended += 1 } }
  for _ in 0..<count { client.connectTCP("127.0.0.1", port, factory: clients, timeout: 120) }
  var result = Burst()
  var held: [Client] = []
  let ping = Array("ping".utf8)
  // One run of the client reactor (run() shuts it down when it returns), in two phases.
  let poll = stop(client) {
    if held.isEmpty && clients.clients.count == count && counters.accepted - acceptedBefore == count
      && ended == expected
    {
      for one in clients.clients where one.lostReason != nil {
        if one.received == refusal { result.refusedWithText += 1 } else { result.other.append("\(one.received)") }
      }
      held = clients.clients.filter { $0.lostReason == nil }
      for one in held {
        one.expecting = ping.count
        one.transport.write(ping)
      }
    }
    return !held.isEmpty && ended == count && counters.live == 0
  }
  run(client, timeout: 300)
  poll.stop()
  result.served = held.filter { $0.received == ping }.count
  return result
}

@Suite("Admission across a reactor group")
struct GroupAdmissionTests {
  @Test(
    "500 clients at once against --max-connections 100 on 4 reactors: never more than 100 served, exactly 400 refused with the text, then 100 more served"
  )
  func countingEchoLimit() throws {
    raiseFileLimit()
    let group = try ReactorGroup(threads: 4)
    defer {
      group.stop()
      group.run()
    }
    let slots = ConnectionSlots(limit: 100)
    let counters = ConnectionCounters(stripes: group.count)
    let tracker = PeakTracker()
    let port = try group.listenTCP(0, interface: "127.0.0.1") { home in
      PeakFactory(
        wrapping: CountingFactory(slots: slots, counters: counters.stripe(home.index)), tracker: tracker,
        admitted: { $0 is CountingEcho })
    }
    let refusal = Array(CountingEcho.refusal.utf8)
    let first = try burst(500, port: port.address.port, refusal: refusal, counters: counters, refused: 400)
    #expect(first.served == 100)
    #expect(first.refusedWithText == 400)
    #expect(first.other.isEmpty, "\(first.other.prefix(3))")
    #expect(tracker.peak.load(ordering: .relaxed) == 100, "the most served at once")
    #expect(counters.refused == 400)
    #expect(counters.accepted == 500)
    #expect(slots.inUse == 0)
    #expect(counters.acceptedPerStripe.allSatisfy { $0 > 0 }, "every reactor took part: \(counters.acceptedPerStripe)")

    // All gone: the next 100 are all served.
    let second = try burst(100, port: port.address.port, refusal: refusal, counters: counters, refused: 0)
    #expect(second.served == 100)
    #expect(second.refusedWithText == 0)
    #expect(counters.refused == 400)
    #expect(tracker.peak.load(ordering: .relaxed) == 100)
  }

  @Test("ConnectionLimitFactory shared by 4 reactors: the total limit holds exactly")
  func limitFactoryTotal() throws {
    raiseFileLimit()
    let group = try ReactorGroup(threads: 4)
    defer {
      group.stop()
      group.run()
    }
    let limits = ConnectionLimits(maxConnections: 50)
    let counters = ConnectionCounters(stripes: group.count)
    let tracker = PeakTracker()
    let port = try group.listenTCP(0, interface: "127.0.0.1") { home in
      let limited = ConnectionLimitFactory(
        wrapping: Factory(Echo.self, counters: counters.stripe(home.index)), limits: limits, refusalMessage: "full")
      return PeakFactory(wrapping: limited, tracker: tracker, admitted: { $0 is ProtocolWrapper })
    }
    let result = try burst(200, port: port.address.port, refusal: Array("full".utf8), counters: counters, refused: 150)
    #expect(result.served == 50)
    #expect(result.refusedWithText == 150)
    #expect(tracker.peak.load(ordering: .relaxed) == 50)
    #expect(limits.open == 0)
    let again = try burst(50, port: port.address.port, refusal: Array("full".utf8), counters: counters, refused: 0)
    #expect(again.served == 50)
  }

  @Test("ConnectionLimitFactory shared by 4 reactors: the per-peer limit holds exactly")
  func limitFactoryPerPeer() throws {
    let group = try ReactorGroup(threads: 4)
    defer {
      group.stop()
      group.run()
    }
    let limits = ConnectionLimits(maxPerPeer: 20)
    let counters = ConnectionCounters(stripes: group.count)
    let tracker = PeakTracker()
    let port = try group.listenTCP(0, interface: "127.0.0.1") { home in
      let limited = ConnectionLimitFactory(
        wrapping: Factory(Echo.self, counters: counters.stripe(home.index)), limits: limits, refusalMessage: "full")
      return PeakFactory(wrapping: limited, tracker: tracker, admitted: { $0 is ProtocolWrapper })
    }
    let result = try burst(100, port: port.address.port, refusal: Array("full".utf8), counters: counters, refused: 80)
    #expect(result.served == 20)
    #expect(result.refusedWithText == 80)
    #expect(tracker.peak.load(ordering: .relaxed) == 20)
    #expect(limits.openConnections(from: "127.0.0.1") == 0)
  }
}
