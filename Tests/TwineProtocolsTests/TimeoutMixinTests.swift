import Testing
import TwineProtocols
import TwineTesting

/// A LineReceiver with an idle timeout that every read resets.
final class IdleLines: LineReceiver, TimeoutMixin {
  let idleTimer = IdleTimer()
  var period: Double? = 10
  var lines: [String] = []
  override func connectionMade() { setTimeout(period) }
  override func dataReceived(_ data: RawSpan) {
    resetTimeout()
    super.dataReceived(data)
  }
  override func lineReceived(_ line: RawSpan) { lines.append(line.utf8String) }
}

/// Counts timeouts instead of closing.
final class CountingTimeouts: Protocol, TimeoutMixin {
  let idleTimer = IdleTimer()
  var fired = 0
  override func connectionMade() { setTimeout(5) }
  func timeoutConnection() { fired += 1 }
}

@Suite("TimeoutMixin on a ManualClock")
struct TimeoutMixinTests {
  @Test("an idle connection is closed with .timedOut after the period, not before")
  func firesAfterIdle() {
    let transport = StringTransport()
    let proto = IdleLines()
    transport.connect(proto)
    transport.clock.advance(9.9)
    #expect(!transport.isClosed)
    transport.clock.advance(0.2)
    #expect(transport.closeReason == .timedOut)
  }

  @Test("each read pushes the timeout a full period from then")
  func resetPushes() {
    let transport = StringTransport()
    let proto = IdleLines()
    transport.connect(proto)
    for _ in 0..<5 {
      transport.clock.advance(6)
      transport.receive("ping\r\n")
    }
    #expect(!transport.isClosed)
    #expect(proto.lines.count == 5)
    transport.clock.advance(9.9)
    #expect(!transport.isClosed)
    transport.clock.advance(0.2)
    #expect(transport.closeReason == .timedOut)
  }

  @Test("setTimeout(nil) turns it off and releases the scheduled call")
  func nilDisables() {
    let transport = StringTransport()
    defer { transport.peerClosed() }
    let proto = IdleLines()
    transport.connect(proto)
    #expect(proto.timeout == 10)
    proto.setTimeout(nil)
    #expect(proto.timeout == nil)
    #expect(transport.clock.pendingCalls.isEmpty)
    transport.clock.advance(1000)
    #expect(!transport.isClosed)
  }

  @Test("a shorter setTimeout replaces a longer one, counted from now")
  func shorterReplaces() {
    let transport = StringTransport()
    let proto = IdleLines()
    proto.period = 100
    transport.connect(proto)
    transport.clock.advance(1)
    proto.setTimeout(5)
    transport.clock.advance(4.9)
    #expect(!transport.isClosed)
    transport.clock.advance(0.2)
    #expect(transport.closeReason == .timedOut)
  }

  @Test("with output still queued for a peer that does not read, the timeout aborts")
  func abortsWhenOutputIsQueued() {
    let transport = StringTransport()
    transport.holdWrites = true
    let proto = IdleLines()
    transport.connect(proto)
    proto.sendLine("unread")
    transport.clock.advance(11)
    #expect(transport.closeReason == .aborted)
  }

  @Test("the conforming class's timeoutConnection is called, once per expiry")
  func customAction() {
    let transport = StringTransport()
    defer { transport.peerClosed() }
    let proto = CountingTimeouts()
    transport.connect(proto)
    transport.clock.advance(5.1)
    #expect(proto.fired == 1)
    transport.clock.advance(100)
    #expect(proto.fired == 1)  // fired once; resetTimeout after expiry does nothing
    proto.resetTimeout()
    transport.clock.advance(100)
    #expect(proto.fired == 1)
    proto.setTimeout(1)
    transport.clock.advance(1.1)
    #expect(proto.fired == 2)
  }

  @Test("never fires after connectionLost")
  func noFireAfterClose() {
    let transport = StringTransport()
    let proto = CountingTimeouts()
    transport.connect(proto)
    transport.peerClosed()
    transport.clock.advance(100)
    #expect(proto.fired == 0)
  }

  @Test("a pending timeout keeps neither a closed protocol nor its timer alive")
  func noLeak() {
    let clock = ManualClock()
    weak var weakProto: IdleLines?
    weak var weakTimer: IdleTimer?
    do {
      let transport = StringTransport(clock: clock)
      let proto = IdleLines()
      weakProto = proto
      weakTimer = proto.idleTimer
      transport.connect(proto)
      transport.peerClosed()
    }
    #expect(weakProto == nil)
    #expect(weakTimer == nil)
    #expect(clock.pendingCalls.isEmpty)  // freeing the timer cancelled its call
  }
}
