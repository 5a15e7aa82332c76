import Twine

/// One stream connection (TCP, UNIX or TLS) for async code: ``inbound`` chunks in,
/// ``outbound`` writes out, with back-pressure both ways (NIO's `NIOAsyncChannel`).
///
/// ```swift
/// for try await chunk in connection.inbound {
///   try await connection.outbound.write(chunk)
/// }
/// connection.close()
/// ```
///
/// Back-pressure follows the transport's `WriteBufferLimits`: while more than `highWater`
/// bytes wait for the consumer, the socket is not read; `outbound.write` returns once its
/// bytes are queued, but waits first while more than `highWater` bytes are queued, until the
/// queue drains to `lowWater`. Cancelling a task that waits in `inbound` or `outbound` aborts
/// the connection (`connectionLost(.aborted)`), and the wait throws `CloseReason.aborted`.
/// A connection that ends for another reason throws that reason from `inbound` and
/// `outbound` (a clean end finishes `inbound` instead).
///
/// Its calls are cheapest on the reactor's thread (a task whose executor preference is
/// `ReactorExecutor`, as the tasks of ``AsyncReactor/react(_:)`` and their children are):
/// a chunk then reaches the task with no thread hop. From any other thread each call hops there.
public final class AsyncConnection: @unchecked Sendable {
  // @unchecked Sendable: every mutable property is touched only on the reactor's thread. Each
  // public entry point either checks `executor.isOnLoopThread` or hops there through
  // `executor.onLoop`/`later` first, and the bridge's callbacks come from the loop itself.
  // Exclusivity unchecked on the per-chunk state: touched on every chunk, only on the loop
  // thread, never while another access to it is open.

  let executor: ReactorExecutor
  /// The transport, once the connection is made; kept after the close (its calls are no-ops then).
  @exclusivity(unchecked) private var transport: (any Transport)?
  /// Bytes received and not yet handed out.
  @exclusivity(unchecked) private var pending: [UInt8] = []
  /// The storage of the last chunk handed out: reused once the consumer drops it.
  @exclusivity(unchecked) private var spare: [UInt8] = []
  @exclusivity(unchecked) private var reader: UnsafeContinuation<[UInt8]?, any Error>?
  private var writers: [UnsafeContinuation<Void, any Error>] = []
  private var closeWaiters: [UnsafeContinuation<CloseReason, Never>] = []
  /// False while the transport's queue is above its high mark (it paused us as its producer).
  @exclusivity(unchecked) private var writable = true
  /// True while reading is paused because the consumer is behind.
  @exclusivity(unchecked) private var readPaused = false
  /// The peer ended its side (half-close): `inbound` ends once `pending` is handed out.
  private var inputEnded = false
  /// ``finish()`` was called: writes are refused.
  private var outputFinished = false
  /// Why the connection closed, once it did.
  private(set) var lostReason: CloseReason?
  /// Limits in force (the transport's), read when the connection starts.
  private var limits = WriteBufferLimits.default
  /// The task running ``executeThenClose(_:)``'s body, while it runs (compared, never used).
  @exclusivity(unchecked) private var scopeTask: UnsafeCurrentTask?

  /// The peer's address.
  public let peer: SocketAddress

  init(executor: ReactorExecutor, peer: SocketAddress) {
    self.executor = executor
    self.peer = peer
  }

  /// The bytes the peer sends, chunk by chunk; ends when the peer closes cleanly, throws the
  /// `CloseReason` otherwise. Iterate it from one task at a time.
  public var inbound: Inbound { Inbound(connection: self) }

  /// Where to write.
  public var outbound: Outbound { Outbound(connection: self) }

  /// Closes gracefully: stops reading, sends what is queued, then closes (`.closedByUs`).
  /// Waiting readers finish; waiting writers throw. Safe from any thread.
  public func close() {
    executor.onLoop { self.transport?.loseConnection() }
  }

  /// Closes now with a reset, discarding queued output (`.aborted`). Safe from any thread.
  public func abort() {
    executor.onLoop { self.abortNow() }
  }

  /// Why the connection closed, once it has; waits for it.
  public var closeReason: CloseReason {
    get async {
      if executor.isOnLoopThread, let lostReason { return lostReason }
      return await withUnsafeContinuation { continuation in
        let posted = executor.onLoop {
          if let reason = self.lostReason { return continuation.resume(returning: reason) }
          self.closeWaiters.append(continuation)
        }
        if !posted { continuation.resume(returning: self.lostReason ?? .reactorShutdown) }
      }
    }
  }

  /// Runs `body` with the connection's two halves, then closes it: gracefully when `body`
  /// returns, with a reset when it throws (NIO's `executeThenClose`).
  ///
  /// Cheaper than bare `inbound`/`outbound` calls: one cancellation handler covers the whole
  /// body (cancelling this task aborts the connection), instead of one per wait.
  public func executeThenClose<Result>(
    _ body: (_ inbound: Inbound, _ outbound: Outbound) async throws -> Result
  ) async throws -> Result {
    do {
      let result = try await withTaskCancellationHandler {
        let scoped = enterScope()
        defer { if scoped { scopeTask = nil } }
        return try await body(inbound, outbound)
      } onCancel: {
        executor.later { self.abortNow() }
      }
      close()
      return result
    } catch {
      abort()
      throw error
    }
  }

  /// On the loop thread, outside any other scope: makes the current task the one whose waits
  /// need no handler of their own (``executeThenClose(_:)``'s covers them). True if it did.
  private func enterScope() -> Bool {
    guard executor.isOnLoopThread, scopeTask == nil else { return false }
    scopeTask = withUnsafeCurrentTask { $0 }
    return scopeTask != nil
  }

  /// True when the current task is the one an ``executeThenClose(_:)`` handler covers.
  private var inScope: Bool {
    guard let scopeTask else { return false }
    return withUnsafeCurrentTask { $0 == scopeTask }
  }

  /// Bytes received and not yet handed to the consumer. Reactor thread only.
  var buffered: Int { pending.count }

  /// Bytes written so far but not yet handed to the kernel (0 once closed). Reactor thread only.
  var queued: Int { lostReason == nil ? transport?.pendingWriteCount ?? 0 : 0 }

  // MARK: Events from the bridge (loop thread)

  func made(_ transport: any Transport, producer: any PushProducer) {
    self.transport = transport
    limits = transport.writeBufferLimits
    transport.registerProducer(producer)
  }

  func received(_ data: RawSpan) {
    if let reader, pending.isEmpty {
      self.reader = nil
      reuse(&spare)
      data.withUnsafeBytes { spare.append(contentsOf: $0) }
      reader.resume(returning: spare)
      return
    }
    data.withUnsafeBytes { pending.append(contentsOf: $0) }
    if pending.count > limits.highWater, !readPaused {
      readPaused = true
      transport?.pauseProducing()
    }
  }

  func inputFinished() {
    inputEnded = true
    if let reader, pending.isEmpty {
      self.reader = nil
      reader.resume(returning: nil)
    }
  }

  func lost(_ reason: CloseReason) {
    lostReason = reason
    if let reader, pending.isEmpty {
      self.reader = nil
      if reason.isClean { reader.resume(returning: nil) } else { reader.resume(throwing: reason) }
    }
    let writers = self.writers
    self.writers = []
    for writer in writers { writer.resume(throwing: reason) }
    let waiters = closeWaiters
    closeWaiters = []
    for waiter in waiters { waiter.resume(returning: reason) }
  }

  func pauseWriting() { writable = false }

  func resumeWriting() {
    writable = true
    let writers = self.writers
    self.writers.removeAll(keepingCapacity: true)
    for writer in writers { writer.resume() }
  }

  // MARK: Reading (loop thread)

  /// Empties `buffer` for reuse: no allocation when the consumer has dropped its last chunk.
  private func reuse(_ buffer: inout [UInt8]) {
    buffer.removeAll(keepingCapacity: true)
  }

  /// The next chunk if one is ready, nil when there is none yet.
  private func take() -> [UInt8]? {
    guard !pending.isEmpty else { return nil }
    swap(&pending, &spare)
    reuse(&pending)
    if readPaused, lostReason == nil {
      readPaused = false
      transport?.resumeProducing()
    }
    return spare
  }

  /// What `inbound` gives when nothing is pending and the input has ended; nil: wait.
  private func ending() -> Result<[UInt8]?, any Error>? {
    if let lostReason { return lostReason.isClean ? .success(nil) : .failure(lostReason) }
    if inputEnded { return .success(nil) }
    return nil
  }

  /// Loop thread: the next chunk, or parks `continuation` until one comes.
  private func next(into continuation: UnsafeContinuation<[UInt8]?, any Error>) {
    if let chunk = take() { return continuation.resume(returning: chunk) }
    if let end = ending() { return continuation.resume(with: end) }
    precondition(reader == nil, "a connection's inbound is iterated by one task at a time")
    reader = continuation
  }

  func nextChunk() async throws -> [UInt8]? {
    if executor.isOnLoopThread {
      if let chunk = take() { return chunk }
      if let end = ending() { return try end.get() }
      if Task.isCancelled {
        abortNow()
        throw CloseReason.aborted
      }
      if inScope {
        return try await withUnsafeThrowingContinuation { continuation in next(into: continuation) }
      }
    }
    return try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { continuation in
        if executor.isOnLoopThread { return next(into: continuation) }
        let posted = executor.later { self.next(into: continuation) }
        if !posted { continuation.resume(throwing: lostReason ?? CloseReason.reactorShutdown) }
      }
    } onCancel: {
      executor.later { self.abortNow() }
    }
  }

  // MARK: Writing (loop thread)

  /// Loop thread: writes `bytes`; true when the writer may go on at once, or throws the close reason.
  private func write(_ bytes: UnsafeRawBufferPointer) throws(CloseReason) -> Bool {
    if let lostReason { throw lostReason }
    guard let transport, !outputFinished else { throw CloseReason.closedByUs }
    transport.write(bytes.bytes)
    if let lostReason { throw lostReason }  // the write ended it (a send error)
    return writable
  }

  /// Loop thread: writes `bytes`, as ``write(_:)-(UnsafeRawBufferPointer)`` does.
  private func write(_ bytes: [UInt8]) throws(CloseReason) -> Bool {
    let result = bytes.withUnsafeBytes { bytes in Result { () throws(CloseReason) in try write(bytes) } }
    return try result.get()
  }

  /// Loop thread: parks `continuation` until the queue drains to its low mark.
  private func waitWritable(_ continuation: UnsafeContinuation<Void, any Error>) {
    if let lostReason { return continuation.resume(throwing: lostReason) }
    if writable { return continuation.resume() }
    writers.append(continuation)
  }

  func write(_ bytes: [UInt8]) async throws {
    if executor.isOnLoopThread {
      if Task.isCancelled {
        abortNow()
        throw CloseReason.aborted
      }
      if try write(bytes) { return }
      if inScope {
        return try await withUnsafeThrowingContinuation { continuation in waitWritable(continuation) }
      }
      try await withTaskCancellationHandler {
        try await withUnsafeThrowingContinuation { continuation in
          // Still on the loop thread: nothing ran since the write.
          waitWritable(continuation)
        }
      } onCancel: {
        executor.later { self.abortNow() }
      }
      return
    }
    try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { continuation in
        let posted = executor.later {
          do throws(CloseReason) {
            if try self.write(bytes) {
              return continuation.resume()
            }
            self.waitWritable(continuation)
          } catch {
            continuation.resume(throwing: error)
          }
        }
        if !posted { continuation.resume(throwing: lostReason ?? CloseReason.reactorShutdown) }
      }
    } onCancel: {
      executor.later { self.abortNow() }
    }
  }

  func finish() {
    executor.onLoop {
      self.outputFinished = true
      self.transport?.loseWriteConnection()
    }
  }

  /// Loop thread: aborts an open connection (task cancellation, ``abort()``).
  private func abortNow() {
    guard lostReason == nil else { return }
    transport?.abortConnection(reason: .aborted)
  }

  /// Loop thread: refuses a connection that never reached the user (its listener closed).
  func refuse() { abortNow() }
}
