import Twine

/// A listening port for async code: an `AsyncSequence` of the connections it accepts
/// (``AsyncReactor/listen(tcp:interface:backlog:)`` and its UNIX and TLS siblings).
///
/// ```swift
/// try await withThrowingDiscardingTaskGroup { group in
///   for try await connection in try await reactor.listen(tcp: 8025) {
///     group.addTask { try await echo(connection) }
///   }
/// }
/// ```
///
/// The sequence ends after ``close()`` or the reactor's shutdown. Connections accepted but
/// not yet taken when it ends are aborted.
public final class AsyncListener: AsyncSequence, @unchecked Sendable {
  // @unchecked Sendable: `port`, `ready`, `waiter` and `ended` are touched only on the
  // reactor's thread (the factory's callbacks come from the loop; the public calls check the
  // thread or hop there through the executor); `counters` and `address` are Sendable lets.

  /// An accepted connection.
  public typealias Element = AsyncConnection
  /// The sequence does not throw (it ends instead); `any Error` leaves room to.
  public typealias Failure = any Error

  let executor: ReactorExecutor
  private var port: ListeningPort?
  private var ready: [AsyncConnection] = []
  private var readyStart = 0
  private var waiter: UnsafeContinuation<AsyncConnection?, any Error>?
  private var ended = false

  /// The connections' counters: live, accepted, refused, bytes in and out.
  public let counters: ConnectionCounters

  /// The address the port is bound to (read the port number here after listening on port 0).
  public private(set) var address: SocketAddress

  /// Loop thread: listens through `open`, which gets the factory to serve.
  init(executor: ReactorExecutor, open: (Factory) throws(TwineError) -> ListeningPort) throws(TwineError) {
    self.executor = executor
    let counters = ConnectionCounters()
    self.counters = counters
    self.address = SocketAddress(.ipv4(0), port: 0)
    let factory = ListenerFactory(counters: counters) { [weak self, executor] peer -> StreamBridge? in
      guard let self else { return nil }
      let bridge = StreamBridge(AsyncConnection(executor: executor, peer: peer))
      bridge.onMade = { [weak self] connection in
        guard let self else { return connection.refuse() }
        self.accepted(connection)
      }
      return bridge
    }
    factory.stopped = { [weak self] in self?.end() }
    let port = try open(factory)
    self.port = port
    self.address = port.address
  }

  /// Stops listening and ends the sequence. Safe from any thread.
  public func close() {
    executor.onLoop { self.end() }
  }

  /// Makes the iterator; one task at a time takes connections.
  public func makeAsyncIterator() -> Iterator { Iterator(listener: self) }

  /// Hands out accepted connections.
  public struct Iterator: AsyncIteratorProtocol {
    let listener: AsyncListener

    /// The next accepted connection; nil once the listener has closed.
    public mutating func next() async throws -> AsyncConnection? {
      try await listener.nextConnection()
    }
  }

  // MARK: Loop thread

  private func accepted(_ connection: AsyncConnection) {
    if ended { return connection.refuse() }
    if let waiter {
      self.waiter = nil
      return waiter.resume(returning: connection)
    }
    ready.append(connection)
  }

  private func take() -> AsyncConnection? {
    guard readyStart < ready.count else { return nil }
    let connection = ready[readyStart]
    readyStart += 1
    if readyStart == ready.count {
      ready.removeAll(keepingCapacity: true)
      readyStart = 0
    }
    return connection
  }

  private func next(into continuation: UnsafeContinuation<AsyncConnection?, any Error>) {
    if let connection = take() { return continuation.resume(returning: connection) }
    if ended { return continuation.resume(returning: nil) }
    precondition(waiter == nil, "a listener is iterated by one task at a time")
    waiter = continuation
  }

  private func end() {
    guard !ended else { return }
    ended = true
    port?.stopListening()
    port = nil
    while let left = take() { left.refuse() }
    if let waiter {
      self.waiter = nil
      waiter.resume(returning: nil)
    }
  }

  func nextConnection() async throws -> AsyncConnection? {
    if executor.isOnLoopThread {
      if let connection = take() { return connection }
      if ended { return nil }
    }
    return try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { continuation in
        if executor.isOnLoopThread { return next(into: continuation) }
        if !executor.later({ self.next(into: continuation) }) { continuation.resume(returning: nil) }
      }
    } onCancel: {
      executor.later { self.end() }
    }
  }
}

/// The factory of an ``AsyncListener``'s port: tells the listener when the port stops
/// (``close()``, or the reactor's shutdown), so that the sequence ends.
private final class ListenerFactory: Factory {
  var stopped: (() -> Void)?

  override func stopFactory() {
    let stopped = self.stopped
    self.stopped = nil
    stopped?()
  }
}
