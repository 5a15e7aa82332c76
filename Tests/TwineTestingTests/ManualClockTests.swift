import Testing
import TwineTesting

@Suite("ManualClock and LoopingCall")
struct ManualClockTests {
  @Test("calls run in time order, ties in scheduling order, only when time reaches them")
  func ordering() {
    let clock = ManualClock()
    var log: [String] = []
    clock.callLater(2) { log.append("b") }
    clock.callLater(1) { log.append("a") }
    clock.callLater(2) { log.append("c") }
    clock.advance(0.5)
    #expect(log.isEmpty)
    clock.advance(2)
    #expect(log == ["a", "b", "c"])
  }

  @Test("cancel, reset and delay move or drop a call")
  func cancelResetDelay() {
    let clock = ManualClock()
    var log: [String] = []
    let dropped = clock.callLater(1) { log.append("dropped") }
    let moved = clock.callLater(1) { log.append("moved") }
    let pushed = clock.callLater(1) { log.append("pushed") }
    dropped.cancel()
    moved.reset(5)
    pushed.delay(2)
    clock.advance(1)
    #expect(log.isEmpty)
    clock.advance(2)
    #expect(log == ["pushed"])
    clock.advance(2)
    #expect(log == ["pushed", "moved"])
    #expect(!dropped.isActive && !moved.isActive)
  }

  @Test("LoopingCall runs at each interval and stops")
  func loopingCall() {
    let clock = ManualClock()
    var count = 0
    let loop = LoopingCall(clock) { count += 1 }
    loop.start(interval: 1)
    #expect(count == 1)
    clock.advance(1)
    clock.advance(1)
    #expect(count == 3)
    loop.stop()
    clock.advance(5)
    #expect(count == 3)
  }

  @Test("LoopingCall skips missed intervals instead of bursting")
  func loopingCallSkips() {
    let clock = ManualClock()
    var times: [Double] = []
    let loop = LoopingCall(clock) { times.append(clock.now) }
    loop.start(interval: 1, now: false)
    clock.advance(3.5)
    #expect(times == [1, 2, 3])
    loop.stop()
  }
}

/// A connector on a manual clock that records connect attempts.
final class FakeConnector: Connector {
  unowned let clock: ManualClock  // the clock's pending retry holds the connector
  var attempts = 0
  init(_ clock: ManualClock) { self.clock = clock }
  func connect() { attempts += 1 }
  func stopConnecting() {}
  func disconnect() {}
  var destination: (host: String, port: Int) { ("127.0.0.1", 1) }
  var scheduler: (any Scheduler)? { clock }
}

/// A generator that always returns the middle of the range, so jitter is zero.
struct MidpointRandom: RandomNumberGenerator {
  mutating func next() -> UInt64 { UInt64.max / 2 }
}

@Suite("ReconnectingClientFactory back-off")
struct ReconnectingTests {
  @Test("each failure waits longer by the factor, capped at maxDelay")
  func exponentialBackoff() {
    let clock = ManualClock()
    let connector = FakeConnector(clock)
    let factory = ReconnectingClientFactory(Protocol.self, random: MidpointRandom())
    factory.maxDelay = 10
    var delays: [Double] = []
    for _ in 0..<4 {
      factory.clientConnectionFailed(connector, reason: .connectionRefused)
      delays.append(factory.delay)
      clock.advance(factory.delay)
    }
    #expect(connector.attempts == 4)
    #expect(abs(delays[0] - 2.718) < 0.01)
    #expect(abs(delays[1] - 7.389) < 0.01)
    #expect(delays[2] == 10 && delays[3] == 10)
  }

  @Test("jitter stays within its spread")
  func jitterBounds() {
    let clock = ManualClock()
    let connector = FakeConnector(clock)
    let factory = ReconnectingClientFactory(Protocol.self)
    factory.clientConnectionLost(connector, reason: .reset)
    let base = factory.initialDelay * factory.factor
    #expect(abs(factory.delay - base) <= base * factory.jitter + 1e-9)
  }

  @Test("stopTrying cancels the pending retry; resetDelay starts over; maxRetries stops")
  func stopAndReset() {
    let clock = ManualClock()
    let connector = FakeConnector(clock)
    let factory = ReconnectingClientFactory(Protocol.self, random: MidpointRandom())
    factory.clientConnectionFailed(connector, reason: .timedOut)
    factory.stopTrying()
    clock.advance(100)
    #expect(connector.attempts == 0)

    factory.resetDelay()
    #expect(factory.delay == factory.initialDelay && factory.continueTrying)
    factory.maxRetries = 2
    for _ in 0..<5 {
      factory.clientConnectionFailed(connector, reason: .connectionRefused)
      clock.advance(10_000)
    }
    #expect(connector.attempts == 2)
  }
}
