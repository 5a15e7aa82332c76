import Synchronization

/// A result that callback code delivers later and async code awaits (Twisted's `Deferred`,
/// awaited): the bridge from a protocol's callbacks to a task.
///
/// ```swift
/// let greeting = Deferred<String>()
/// // in a protocol's dataReceived:  greeting.callback(data.utf8String)
/// let text = try await greeting.value
/// ```
///
/// Any thread may fire or await it. It fires once: later ``callback(_:)`` and ``errback(_:)``
/// calls are ignored. Any number of tasks may wait; a cancelled waiter throws `CancellationError`.
public final class Deferred<Value: Sendable>: Sendable {
  private struct State {
    var result: Result<Value, any Error>?
    var waiters: [Int: UnsafeContinuation<Value, any Error>] = [:]
    var nextID = 0
  }
  private let state = Mutex(State())

  /// A deferred that has not fired.
  public init() {}

  /// True once it has fired.
  public var hasFired: Bool { state.withLock { $0.result != nil } }

  /// Fires with `value`: every waiter gets it. Ignored after the first firing.
  public func callback(_ value: Value) { fire(.success(value)) }

  /// Fires with `error`: every waiter throws it. Ignored after the first firing.
  public func errback(_ error: any Error) { fire(.failure(error)) }

  private func fire(_ result: Result<Value, any Error>) {
    let waiters = state.withLock { state -> [UnsafeContinuation<Value, any Error>] in
      guard state.result == nil else { return [] }
      state.result = result
      defer { state.waiters = [:] }
      return Array(state.waiters.values)
    }
    for waiter in waiters { waiter.resume(with: result) }
  }

  /// The value, once it has fired (at once if it has); throws the error it fired with.
  public var value: Value {
    get async throws {
      let id = state.withLock { state -> Int in
        state.nextID += 1
        return state.nextID
      }
      return try await withTaskCancellationHandler {
        try await withUnsafeThrowingContinuation { continuation in
          let ready = state.withLock { state -> Result<Value, any Error>? in
            if let result = state.result { return result }
            // Cancelled before this registration: the handler found no waiter to remove.
            if Task.isCancelled { return .failure(CancellationError()) }
            state.waiters[id] = continuation
            return nil
          }
          if let ready { continuation.resume(with: ready) }
        }
      } onCancel: {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.resume(throwing: CancellationError())
      }
    }
  }
}
