import Twine

extension Protocol {
  /// Starts async work from a callback (Twisted's `ensureDeferred`): `work` runs in a task on
  /// the connection's reactor, then `then` gets its result on the reactor's thread, where
  /// it may use the transport like any callback. Returns the task (cancel it to stop the
  /// work: `then` gets `CancellationError`), or nil when the connection has no reactor
  /// (it has closed, or it is an in-memory test transport).
  ///
  /// ```swift
  /// override func connectionMade() {
  ///   startTask {
  ///     try await lookUpGreeting()
  ///   } then: { result in
  ///     self.transport.write((try? result.get()) ?? "hello")
  ///   }
  /// }
  /// ```
  @discardableResult
  public func startTask<T: Sendable>(
    _ work: sending @escaping () async throws -> T,
    then: @escaping (Result<T, any Error>) -> Void
  ) -> Task<Void, Never>? {
    guard connected, let reactor = transport.scheduler as? Reactor else { return nil }
    let executor = reactor.executor
    let then = LoopBound(then)
    return Task(executorPreference: executor) {
      let result: Result<T, any Error>
      do {
        result = .success(try await work())
      } catch {
        result = .failure(error)
      }
      // Back on the loop thread (the task prefers the reactor's executor): call back there.
      executor.onLoop { then.value(result) }
    }
  }
}

/// A closure made on the reactor's thread, carried through a task and called only on that
/// thread again (`ReactorExecutor.onLoop(_:)`): @unchecked Sendable for that reason.
private struct LoopBound<T: Sendable>: @unchecked Sendable {
  let value: (Result<T, any Error>) -> Void
  init(_ value: @escaping (Result<T, any Error>) -> Void) { self.value = value }
}
