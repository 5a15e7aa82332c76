import Glibc
import Logging
import Synchronization

/// One reactor of a ``ReactorGroup``: its own `event_base`, run on its own thread from
/// the group's creation until the group stops. Other threads reach it only through
/// ``callFromThread(_:)`` and ``perform(_:)``, whose bodies run on its thread with the
/// ``Reactor`` in hand; everything that reactor makes (ports, connections, timers) stays
/// on that thread for life.
///
/// ```swift
/// group.next().callFromThread { reactor in
///   reactor.callLater(1) { print("a second later, on this reactor's thread") }
/// }
/// ```
public final class ReactorThread: Sendable {
  /// This reactor's place in its group, from 0.
  public let index: Int
  private let home: Home
  private let door: CrossThreadCaller
  private let thread: pthread_t

  /// What only the reactor's own thread touches (the reactor itself), plus the thread's
  /// identity, written once before the thread publishes its door.
  private final class Home: @unchecked Sendable {
    var reactor: Reactor?
    var threadID = pthread_t()
  }

  /// What the new thread runs; passed to `pthread_create` retained, taken back by the thread.
  private final class Start {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
  }

  /// Starts a thread that makes a reactor (logging with `reactor: index` metadata) and runs
  /// it until it stops; returns once the reactor exists. Throws what making it threw.
  init(index: Int, logger: Logger) throws(TwineError) {
    let home = Home()
    let ready = Rendezvous<Result<CrossThreadCaller, TwineError>>()
    var logger = logger
    logger[metadataKey: "reactor"] = "\(index)"
    let start = Start { [logger] in
      let reactor: Reactor
      do throws(TwineError) {
        reactor = try Reactor(logger: logger)
      } catch {
        ready.put(.failure(error))
        return
      }
      home.reactor = reactor
      home.threadID = pthread_self()
      ready.put(.success(reactor.crossThread))
      reactor.run()  // until stop(); then its shutdown closed every port and connection
      home.reactor = nil  // frees the event_base and its descriptors, on this thread
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(start).toOpaque()
    let made = pthread_create(
      &thread, nil,
      { context in
        Unmanaged<Start>.fromOpaque(context!).takeRetainedValue().body()
        return nil
      }, context)
    guard made == 0 else {
      Unmanaged<Start>.fromOpaque(context).release()
      throw .libevent("pthread_create: \(SocketError.from(code: made))")
    }
    switch ready.wait() {
    case .success(let door):
      self.door = door
    case .failure(let error):
      pthread_join(thread, nil)
      throw error
    }
    self.index = index
    self.home = home
    self.thread = thread
  }

  /// True when called on this reactor's thread.
  public var isCurrent: Bool { pthread_equal(pthread_self(), home.threadID) != 0 }

  /// Queues `body` to run on this reactor's thread with the reactor, in the order queued
  /// (the reactor's ``CrossThreadCaller``). Returns false, and drops `body`, once the reactor has shut down.
  @discardableResult
  public func callFromThread(_ body: @escaping @Sendable (Reactor) -> Void) -> Bool {
    let home = home
    return door.callFromThread {
      guard let reactor = home.reactor else { return }
      body(reactor)
    }
  }

  /// Runs `body` on this reactor's thread with the reactor and waits for its result (at
  /// once when called on that thread). Throws what `body` throws, or
  /// ``TwineError/reactorShutDown`` when the reactor has shut down.
  public func perform<T: Sendable>(_ body: @escaping @Sendable (Reactor) throws(TwineError) -> T) throws(TwineError)
    -> T
  {
    if isCurrent {
      guard let reactor = home.reactor else { throw .reactorShutDown }
      return try body(reactor)
    }
    let result = Rendezvous<Result<T, TwineError>>()
    let reply = Reply(result)
    let queued = callFromThread { reactor in
      reply.send(Result { () throws(TwineError) in try body(reactor) })
    }
    guard queued else { throw .reactorShutDown }
    _ = consume reply  // dropped unrun by a reactor shutting down: the reply says so
    return try result.wait().get()
  }

  /// Makes the reactor's ``Reactor/run()`` return: it closes every port and connection and
  /// the thread ends. Any thread; does nothing once it has stopped.
  public func stop() {
    callFromThread { $0.stop() }
  }

  /// Waits for the thread to end (after ``stop()``). Called once, by the group.
  func join() {
    if isCurrent {
      pthread_detach(thread)  // the last reference went on this very thread: it ends by itself
    } else {
      pthread_join(thread, nil)
    }
  }
}

/// Answers a ``ReactorThread/perform(_:)`` exactly once: with the result, or, when the call
/// carrying it is dropped unrun, with ``TwineError/reactorShutDown``.
private final class Reply<T: Sendable>: Sendable {
  private let result: Rendezvous<Result<T, TwineError>>
  init(_ result: Rendezvous<Result<T, TwineError>>) { self.result = result }
  deinit { result.put(.failure(.reactorShutDown)) }
  func send(_ value: Result<T, TwineError>) { result.put(value) }
}
