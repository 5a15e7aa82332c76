import Glibc
import Synchronization
import Twine

extension Reactor {
  /// This reactor's handle for async code (listen, connect, sleep from any task).
  public var async: AsyncReactor { AsyncReactor(executor) }

  /// Listens on TCP `port` for async code, from the reactor's thread (``AsyncReactor/listen(tcp:interface:backlog:)``
  /// does the same from any task). `interface` is numeric; empty means every IPv4 interface.
  public func listen(tcp port: Int, interface: String = "", backlog: Int = 511) throws(TwineError) -> AsyncListener {
    try AsyncListener(executor: executor) { factory throws(TwineError) in
      try listenTCP(port, factory: factory, backlog: backlog, interface: interface)
    }
  }

  /// Listens on the UNIX-domain socket `path` for async code, from the reactor's thread.
  public func listen(unix path: String, mode: mode_t = 0o666, backlog: Int = 511) throws(TwineError)
    -> AsyncListener
  {
    try AsyncListener(executor: executor) { factory throws(TwineError) in
      try listenUNIX(path, factory: factory, mode: mode, backlog: backlog)
    }
  }

  /// Listens on TCP `port` speaking TLS with `tls` for async code, from the reactor's thread;
  /// at most `maxPendingHandshakes` handshakes run at once (nil: the port's default).
  public func listen(
    tls port: Int, options tls: TLSOptions, interface: String = "", backlog: Int = 511,
    maxPendingHandshakes: Int? = nil
  ) throws(TwineError) -> AsyncListener {
    try AsyncListener(executor: executor) { factory throws(TwineError) in
      let made = try listenSSL(port, factory: factory, tls: tls, backlog: backlog, interface: interface)
      if let maxPendingHandshakes { made.maxPendingHandshakes = maxPendingHandshakes }
      return made
    }
  }

  /// Runs `main` as a task on this reactor's thread and runs the loop until `main` returns;
  /// then shuts the reactor down and returns what `main` returned, or throws what it threw
  /// (Twisted's `task.react`). Child tasks of `main` run on the reactor's thread too.
  ///
  /// ```swift
  /// try Reactor().react { reactor in
  ///   let connection = try await reactor.connect(host: "127.0.0.1", port: 8025)
  ///   try await connection.outbound.write("hello\r\n")
  ///   connection.close()
  /// }
  /// ```
  ///
  /// When the loop stops first (``stop()``, a signal after ``installSignalHandlers()``), the
  /// shutdown closes every connection and listener, so `main` usually ends with them;
  /// if it has not ended then, it is cancelled and this throws `CancellationError`.
  public func react<T: Sendable>(_ main: sending @escaping (AsyncReactor) async throws -> T) throws -> T {
    let handle = self.async
    let outcome = Outcome<T>()
    let task = Task(executorPreference: executor) {
      do {
        outcome.set(.success(try await main(handle)))
      } catch {
        outcome.set(.failure(error))
      }
      handle.executor.onLoop { handle.executor.reactor?.stop() }
    }
    run()
    guard let result = outcome.get() else {
      task.cancel()
      throw CancellationError()
    }
    return try result.get()
  }
}

/// What `Reactor.react(_:)`'s task ended with.
private final class Outcome<T: Sendable>: Sendable {
  private let result = Mutex<Result<T, any Error>?>(nil)
  func set(_ value: Result<T, any Error>) { result.withLock { $0 = value } }
  func get() -> Result<T, any Error>? { result.withLock { $0 } }
}
