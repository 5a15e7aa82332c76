import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TutorialServers

@testable import Twine

@Suite("Reactor scheduling and threads")
struct ReactorTests {
  @Test("callLater runs calls in time order; cancel drops one; reset moves one")
  func callLaterOrdering() throws {
    let reactor = try Reactor()
    var log: [String] = []
    reactor.callLater(0.06) { log.append("c") }
    reactor.callLater(0.02) { log.append("a") }
    reactor.callLater(0.04) { log.append("b") }
    let cancelled = reactor.callLater(0.03) { log.append("cancelled") }
    let moved = reactor.callLater(0.01) { log.append("moved") }
    cancelled.cancel()
    moved.reset(0.08)
    reactor.callLater(0.1) { reactor.stop() }
    run(reactor)
    #expect(log == ["a", "b", "c", "moved"])
    #expect(!cancelled.isActive && !moved.isActive)
    #expect(reactor.delayedCalls.isEmpty)
  }

  @Test("stop() from inside a callback makes run() return")
  func stopFromCallback() throws {
    let reactor = try Reactor()
    var ranAfterStop = false
    reactor.callLater(0) {
      reactor.stop()
    }
    reactor.callLater(5) { ranAfterStop = true }
    let start = reactor.now
    run(reactor)
    #expect(!ranAfterStop)
    #expect(reactor.now - start < 4)
  }

  @Test("callFromThread from 4 threads × 1,000 calls: all run, on the reactor's thread")
  func callFromThread() throws {
    let reactor = try Reactor()
    let reactorThread = pthread_self()
    let door = reactor.crossThread
    let ran = Atomic<Int>(0)
    let offThread = Atomic<Int>(0)
    var threads: [pthread_t] = []
    final class Job: @unchecked Sendable {
      let body: @Sendable () -> Void
      init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let reactorThreadBits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(bitPattern: reactorThread)))
    nonisolated(unsafe) let unsafeReactor = reactor
    for _ in 0..<4 {
      let job = Job {
        for _ in 0..<1000 {
          door.callFromThread {
            if UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(bitPattern: pthread_self()))) != reactorThreadBits {
              offThread.add(1, ordering: .relaxed)
            }
            if ran.add(1, ordering: .relaxed).newValue == 4000 { unsafeReactor.stop() }
          }
        }
      }
      var thread = pthread_t()
      let context = Unmanaged.passRetained(job).toOpaque()
      pthread_create(
        &thread, nil,
        { context in
          Unmanaged<Job>.fromOpaque(context!).takeRetainedValue().body()
          return nil
        }, context)
      threads.append(thread)
    }
    run(reactor)
    for thread in threads { pthread_join(thread, nil) }
    #expect(ran.load(ordering: .relaxed) == 4000)
    #expect(offThread.load(ordering: .relaxed) == 0)
    #expect(door.callFromThread {} == false, "calls after shutdown are refused")
  }

  @Test("LoopingCall on the reactor fires repeatedly until stopped")
  func loopingCall() throws {
    let reactor = try Reactor()
    var count = 0
    let loop = LoopingCall(reactor) {
      count += 1
    }
    loop.start(interval: 0.01)
    reactor.callLater(0.2) {
      loop.stop()
      reactor.stop()
    }
    run(reactor)
    #expect(count >= 3)
  }

  @Test("listening on a taken port throws cannotListen with EADDRINUSE")
  func portTaken() throws {
    let reactor = try Reactor()
    let port = try listen(reactor, Factory(Echo.self))
    #expect {
      try reactor.listenTCP(port, factory: Factory(Echo.self), interface: "127.0.0.1")
    } throws: { error in
      guard case TwineError.cannotListen(_, let p, let cause) = error else { return false }
      return p == port && cause.code == EADDRINUSE && "\(error)".contains("Address already in use")
    }
    #expect(throws: TwineError.self) { try reactor.listenTCP(0, factory: Factory(Echo.self), interface: "nope") }
  }

  @Test("startFactory runs at the first port, stopFactory after the last")
  func factoryLifecycle() throws {
    final class Tracking: Factory {
      var log: [String] = []
      override func startFactory() { log.append("start") }
      override func stopFactory() { log.append("stop") }
    }
    let reactor = try Reactor()
    let factory = Tracking(Echo.self)
    let a = try reactor.listenTCP(0, factory: factory, interface: "127.0.0.1")
    let b = try reactor.listenTCP(0, factory: factory, interface: "::1")
    #expect(factory.log == ["start"])
    #expect(b.address.host == "::1" && b.address.port > 0)
    a.stopListening()
    #expect(factory.log == ["start"])
    b.stopListening()
    b.stopListening()
    #expect(factory.log == ["start", "stop"])
    #expect(!a.isListening)
  }

  @Test("the resolver finds localhost without blocking the loop")
  func resolverLocalhost() throws {
    let reactor = try Reactor()
    var result: Result<NumericAddress, CloseReason>?
    let lookup = try reactor.sharedResolver().resolve("localhost", port: 80) { outcome in
      result = outcome
      reactor.stop()
    }
    _ = lookup
    run(reactor, timeout: 10)
    guard case .success(var address) = result else {
      Issue.record("lookup failed: \(String(describing: result))")
      return
    }
    let resolved = address.withSockaddr { SocketAddress($0, length: Int($1)) }
    #expect(resolved?.port == 80)
    #expect(resolved?.host == "127.0.0.1" || resolved?.host == "::1")
  }
}
