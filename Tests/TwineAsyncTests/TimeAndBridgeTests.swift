import Glibc
import Testing
import TwineAsync
import TwineTesting

@testable import Twine

/// Timers as a Swift `Clock`, and the two bridges between callback and async code.
@Suite(.serialized) struct TimeAndBridgeTests {
  @Test func reactorSleepWaitsOnTheLoop() async throws {
    let (elapsed, onLoop) = try await reacting { reactor in
      let start = ContinuousClock.now
      try await reactor.sleep(for: .milliseconds(100))
      let onLoop = reactor.executor.isOnLoopThread
      try await Task.sleep(for: .milliseconds(50), clock: reactor.clock)
      return (ContinuousClock.now - start, onLoop)
    }
    #expect(elapsed >= .milliseconds(150))
    #expect(onLoop)
  }

  @Test func cancelledSleepThrowsAndCancelsItsTimer() async throws {
    let (thrown, pending) = try await reacting { reactor in
      let sleeper = Task(executorPreference: reactor.executor) { () -> (any Error)? in
        do {
          try await reactor.sleep(for: .seconds(3600))
          return nil
        } catch {
          return error
        }
      }
      try await reactor.sleep(for: .milliseconds(20))
      sleeper.cancel()
      let thrown = await sleeper.value
      try await reactor.sleep(for: .milliseconds(20))  // the timer's cancel is posted to the loop
      return (thrown is CancellationError, reactor.executor.reactor!.delayedCalls.count)
    }
    #expect(thrown)
    #expect(pending == 1, "the hour-long timer is still pending (1: the test's own timeout guard)")
  }

  /// Code generic over `Clock` runs on a ManualClock: the sleep ends when the test advances time.
  @MainActor @Test func schedulerClockOverManualClock() async throws {
    let manual = ManualClock()
    let clock = SchedulerClock(manual, isolation: MainActor.shared)
    let woke = Shared(false)
    let sleeper = Task { @MainActor in
      try await Task.sleep(for: .seconds(10), clock: clock)
      woke.value = true
    }
    while manual.pendingCalls.isEmpty { await Task.yield() }
    manual.advance(9)
    for _ in 0..<10 { await Task.yield() }
    #expect(!woke.value)
    manual.advance(1)
    try await sleeper.value
    #expect(woke.value)
    #expect(clock.now.offset == .seconds(10))
  }

  /// Callback code starts async work; its result comes back on the reactor's thread.
  @Test func protocolStartsATask() async throws {
    let answer = try await reacting { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      let greeted = Deferred<String>()
      // A callback-style server whose greeting comes from async work.
      let greeterPort = try await reactor.withReactor { inner in
        try inner.listenTCP(0, factory: Factory { _ in SlowGreeter() }, interface: "127.0.0.1").address.port
      }
      let client = try await reactor.connect(host: "127.0.0.1", port: greeterPort)
      greeted.callback(String(decoding: try await readAll(client), as: UTF8.self))
      listener.close()
      return try await greeted.value
    }
    #expect(answer == "hello from a task, on the loop: true\r\n")
  }

  /// Async code awaits a callback-style event through a Deferred.
  @Test func deferredBridgesACallback() async throws {
    let greeting = try await reacting { reactor in
      let listener = try await reactor.listen(tcp: 0, interface: "127.0.0.1")
      async let served: Void = {
        for try await connection in listener {
          try await connection.outbound.write("welcome\r\n")
          connection.close()
        }
      }()
      let first = Deferred<String>()
      let port = listener.address.port
      try await reactor.withReactor { inner in
        _ = inner.connectTCP("127.0.0.1", port, factory: ClientFactory { _ in FirstLine(first) })
      }
      let line = try await first.value
      listener.close()
      try await served
      return line
    }
    #expect(greeting == "welcome")
  }

  @Test func deferredFiresOnceAndCancelsWaiters() async throws {
    let deferred = Deferred<Int>()
    let waiter = Task { try await deferred.value }
    waiter.cancel()
    await #expect(throws: CancellationError.self) { try await waiter.value }
    deferred.callback(1)
    deferred.callback(2)
    deferred.errback(CloseReason.aborted)
    #expect(try await deferred.value == 1)
  }
}

/// Greets with text computed by async work it starts from `connectionMade`.
final class SlowGreeter: Protocol {
  override func connectionMade() {
    startTask {
      try await Task.sleep(for: .milliseconds(10))
      return "hello from a task"
    } then: { result in
      let onLoop = (self.transport.scheduler as? Reactor)?.isOnLoopThread ?? false
      self.transport.write("\((try? result.get()) ?? "failed"), on the loop: \(onLoop)\r\n")
      self.transport.loseConnection()
    }
  }
}

/// Fires `deferred` with the first line it receives, then closes.
final class FirstLine: Protocol {
  let deferred: Deferred<String>
  var text = ""
  init(_ deferred: Deferred<String>) {
    self.deferred = deferred
    super.init()
  }
  required init() { fatalError("made with a Deferred") }
  override func dataReceived(_ data: RawSpan) {
    text += data.utf8String
    if let end = text.firstRange(of: "\r\n") {
      deferred.callback(String(text[..<end.lowerBound]))
      transport.loseConnection()
    }
  }
}

/// An actor whose executor is the reactor's: its methods run on the loop thread.
actor LoopActor {
  let executor: ReactorExecutor
  var calls = 0
  init(_ executor: ReactorExecutor) { self.executor = executor }
  nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

  func call() -> Bool {
    calls += 1
    preconditionIsolated()  // the reactor's serial executor checks the thread
    return executor.isOnLoopThread
  }
}

@Suite struct ReactorExecutorTests {
  /// The reactor is a SerialExecutor too: an actor on it runs on the loop thread, from a task
  /// on the reactor (no thread hop) and from a task elsewhere (a hop through the cross-thread door).
  /// "Elsewhere" is another reactor's thread, not Swift's global pool: in a full parallel run the
  /// pool's threads (2 on a 2-core machine) are held by synchronous tests for minutes at a time.
  @Test func actorOnTheReactorRunsOnTheLoop() async throws {
    let elsewhere = try ReactorGroup(threads: 1)
    defer { elsewhere.stop() }
    let otherExecutor = try elsewhere.reactors[0].perform { $0.executor }
    let (fromLoop, fromElsewhere, calls) = try await reacting { reactor in
      let actor = LoopActor(reactor.executor)
      let fromLoop = await actor.call()
      let fromElsewhere = await Task(executorPreference: otherExecutor) {
        precondition(otherExecutor.isOnLoopThread, "the task starts on the other reactor's thread")
        return await actor.call()
      }.value
      return (fromLoop, fromElsewhere, await actor.calls)
    }
    #expect(fromLoop && fromElsewhere)
    #expect(calls == 2)
  }
}
