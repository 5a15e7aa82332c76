import Glibc
import Twine

/// A `Reactor` as async code sees it: a `Sendable` handle that listens, connects and
/// sleeps, from any task. Get it from `Reactor.async` or `Reactor.react(_:)`.
///
/// Its calls run on the reactor's thread: at once from a task that prefers the reactor's
/// executor (the tasks `Reactor.react(_:)` starts, and their children), through the
/// reactor's cross-thread door otherwise. After the reactor's shutdown they throw
/// `TwineError.reactorShutDown`.
public struct AsyncReactor: Sendable {
  /// The reactor's executor: give it as a task's executor preference to run on the loop thread.
  public let executor: ReactorExecutor

  /// The handle of the reactor `executor` runs on.
  public init(_ executor: ReactorExecutor) {
    self.executor = executor
  }

  /// Runs `body` with the reactor on its thread and returns what it returns.
  func onLoop<T: Sendable>(_ body: @escaping @Sendable (Reactor) throws(TwineError) -> T) async throws(TwineError)
    -> T
  {
    let executor = self.executor
    if executor.isOnLoopThread {
      guard let reactor = executor.reactor else { throw .reactorShutDown }
      return try body(reactor)
    }
    let result: Result<T, TwineError> = await withUnsafeContinuation { continuation in
      let posted = executor.later {
        guard let reactor = executor.reactor else { return continuation.resume(returning: .failure(.reactorShutDown)) }
        do throws(TwineError) {
          continuation.resume(returning: .success(try body(reactor)))
        } catch {
          continuation.resume(returning: .failure(error))
        }
      }
      if !posted { continuation.resume(returning: .failure(.reactorShutDown)) }
    }
    return try result.get()
  }

  /// Runs `body` with the `Reactor` on its thread (at once when already there) and
  /// returns what it returns: the way from async code to the callback API (`connectTCP`,
  /// `callLater`, ...). Throws `TwineError.reactorShutDown` once the reactor has shut down.
  public func withReactor<T: Sendable>(_ body: @escaping @Sendable (Reactor) throws -> T) async throws -> T {
    let result: Result<T, any Error> = try await onLoop { reactor in Result { try body(reactor) } }
    return try result.get()
  }

  // MARK: Listening

  /// Listens on TCP `port` (0 picks a free one: read ``AsyncListener/address``) on `interface`
  /// (numeric; empty means every IPv4 interface) and hands out each connection.
  public func listen(tcp port: Int, interface: String = "", backlog: Int = 511) async throws(TwineError)
    -> AsyncListener
  {
    try await onLoop { reactor throws(TwineError) in
      try reactor.listen(tcp: port, interface: interface, backlog: backlog)
    }
  }

  /// Listens on the UNIX-domain socket `path` (permissions `mode`), as `Reactor.listenUNIX(_:factory:mode:backlog:)` does.
  public func listen(unix path: String, mode: mode_t = 0o666, backlog: Int = 511) async throws(TwineError)
    -> AsyncListener
  {
    try await onLoop { reactor throws(TwineError) in try reactor.listen(unix: path, mode: mode, backlog: backlog) }
  }

  /// Listens on TCP `port` speaking TLS with `tls` (server options); each connection is
  /// handed out after its handshake.
  public func listen(tls port: Int, options tls: TLSOptions, interface: String = "", backlog: Int = 511)
    async throws(TwineError) -> AsyncListener
  {
    try await onLoop { reactor throws(TwineError) in
      try reactor.listen(tls: port, options: tls, interface: interface, backlog: backlog)
    }
  }

  // MARK: Connecting

  /// Connects to `host`:`port` (names resolved without blocking the loop). Throws the
  /// `CloseReason` of a failed attempt (`.connectionRefused`, `.timedOut` after `timeout`
  /// seconds, `.lookupFailed`); cancelling the waiting task stops the attempt (`.aborted`).
  public func connect(host: String, port: Int, timeout: Double? = 30) async throws -> AsyncConnection {
    try await connect { reactor, factory in reactor.connectTCP(host, port, factory: factory, timeout: timeout) }
  }

  /// Connects to the UNIX-domain socket `path`, as ``connect(host:port:timeout:)`` does.
  public func connect(unix path: String, timeout: Double? = 30) async throws -> AsyncConnection {
    try await connect { reactor, factory in reactor.connectUNIX(path, factory: factory, timeout: timeout) }
  }

  /// Connects to `host`:`port` and speaks TLS with `tls` (client options; by default the
  /// system's CAs must vouch for the server). A failed handshake throws `CloseReason.tlsFailed(_:)`.
  public func connect(host: String, port: Int, tls: TLSOptions, timeout: Double? = 30) async throws
    -> AsyncConnection
  {
    try await connect { reactor, factory throws(TwineError) in
      try reactor.connectSSL(host, port, factory: factory, tls: tls, timeout: timeout)
    }
  }

  private func connect(
    _ start: @escaping @Sendable (Reactor, ClientFactory) throws(TwineError) -> any Connector
  ) async throws -> AsyncConnection {
    let executor = self.executor
    let holder = AttemptHolder()
    return try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { continuation in
        let posted = executor.onLoop {
          guard let reactor = executor.reactor else { return continuation.resume(throwing: TwineError.reactorShutDown) }
          let attempt = ConnectAttempt(executor: executor, continuation: continuation)
          holder.attempt = attempt
          do throws(TwineError) {
            let connector = try start(reactor, attempt)
            if holder.cancelled { return attempt.fail(CloseReason.aborted) }
            attempt.connector = connector
          } catch {
            attempt.fail(error)
          }
        }
        if !posted { continuation.resume(throwing: TwineError.reactorShutDown) }
      }
    } onCancel: {
      executor.later {
        holder.cancelled = true
        holder.attempt?.fail(CloseReason.aborted)
      }
    }
  }

  // MARK: Time

  /// The reactor's monotonic clock as a Swift `Clock`, for `Task.sleep(for:clock:)` and
  /// anything generic over `Clock`.
  public var clock: SchedulerClock { SchedulerClock(reactor: self) }

  /// Waits `duration` on the reactor's timers; throws `CancellationError` when the task is cancelled.
  public func sleep(for duration: Duration) async throws {
    try await clock.sleep(for: duration)
  }
}

/// A connect's attempt, for the cancellation handler (which runs on another thread and
/// posts to the loop): @unchecked Sendable, touched only on the loop thread.
private final class AttemptHolder: @unchecked Sendable {
  var attempt: ConnectAttempt?
  var cancelled = false
}
