import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import Twine

/// A Twine reactor as a swift-service-lifecycle `Service`: a `ServiceGroup` runs it, and
/// the group's graceful shutdown (SIGTERM, or another service ending) drains it
/// (`Reactor.drain(timeout:then:)`: listeners closed at once, connections given
/// `drainTimeout` seconds to finish); cancelling the task closes everything at once.
///
/// The reactor is single-threaded and runs a blocking loop, so it gets a thread of its own
/// instead of one of Swift concurrency's: ``run()`` makes it there, calls `setup` on it
/// (listen, connect, schedule), runs it, and returns once it stopped. Signals stay the
/// group's: the reactor installs none.
///
/// ```swift
/// let echo = ReactorService(drainTimeout: 10) { reactor in
///   try reactor.listenTCP(8025, factory: Factory(Echo.self))
/// }
/// let group = ServiceGroup(services: [echo], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public final class ReactorService: Service {
  private let drainTimeout: Double
  private let logger: Logger
  private let setup: @Sendable (Reactor) throws -> Void
  private let state = Mutex(State())

  /// What the async side asked of the reactor, and the door to reach it once it runs.
  private struct State {
    var door: CrossThreadCaller?
    var loop: LoopBound?
    var request: Request?
  }

  private enum Request {
    case drain, stop
  }

  /// A service that makes a reactor (logging to `logger`), calls `setup` with it on the
  /// reactor's thread, and runs it; a graceful shutdown drains it for `drainTimeout` seconds
  /// (0: closes at once). A `setup` that throws makes ``run()`` throw the same error.
  public init(
    drainTimeout: Double = 10, logger: Logger = Logger(label: "twine"),
    setup: @escaping @Sendable (Reactor) throws -> Void
  ) {
    self.drainTimeout = drainTimeout
    self.logger = logger
    self.setup = setup
  }

  /// Runs the reactor on its own thread until it stops: drained after a graceful shutdown,
  /// at once when the task is cancelled. Call it once.
  public func run() async throws {
    try await withTaskCancellationHandler {
      try await withGracefulShutdownHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
          startLoopThread(continuation)
        }
      } onGracefulShutdown: {
        self.ask(.drain)
      }
    } onCancel: {
      self.ask(.stop)
    }
  }

  /// Passes `request` to the reactor's thread, or keeps it for when the reactor is ready.
  private func ask(_ request: Request) {
    let door = state.withLock { state -> CrossThreadCaller? in
      if state.request != .stop { state.request = request }
      return state.door
    }
    door?.callFromThread { [self] in self.serveRequest() }
  }

  /// On the reactor's thread: does what was last asked.
  private func serveRequest() {
    let (loop, request) = state.withLock { ($0.loop, $0.request) }
    guard let reactor = loop?.reactor else { return }
    switch request {
    case .drain: reactor.drain(timeout: drainTimeout) { [reactor] _ in reactor.stop() }
    case .stop: reactor.stop()
    case nil: break
    }
  }

  private func startLoopThread(_ continuation: CheckedContinuation<Void, any Error>) {
    let job = LoopJob { [self] in
      do {
        let reactor = try Reactor(logger: logger)
        try setup(reactor)
        let asked = state.withLock { state in
          state.door = reactor.crossThread
          state.loop = LoopBound(reactor)
          return state.request != nil
        }
        if asked { serveRequest() }
        reactor.run()
        state.withLock { state in
          state.door = nil
          state.loop = nil
        }
        continuation.resume()
      } catch {
        continuation.resume(throwing: error)
      }
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(job).toOpaque()
    let made = pthread_create(
      &thread, nil,
      { context in
        Unmanaged<LoopJob>.fromOpaque(context!).takeRetainedValue().body()
        return nil
      }, context)
    guard made == 0 else {
      Unmanaged<LoopJob>.fromOpaque(context).release()
      continuation.resume(throwing: TwineError.libevent("pthread_create: \(String(cString: strerror(made)))"))
      return
    }
    pthread_detach(thread)
  }
}

/// The body of a reactor's thread.
private final class LoopJob: Sendable {
  let body: @Sendable () -> Void
  init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// The reactor, kept where the async side can hold it; only its own thread dereferences it.
private final class LoopBound: @unchecked Sendable {
  let reactor: Reactor
  init(_ reactor: Reactor) { self.reactor = reactor }
}
