import CLibevent
import Dispatch
import Glibc
import Synchronization

/// The reactor as a Swift executor: tasks and actors run their jobs on the reactor's thread,
/// between its I/O callbacks (SE-0392 `SerialExecutor`, SE-0417 `TaskExecutor`).
///
/// Give it as a task's executor preference and the task's code runs on the loop thread, so a
/// connection's chunks reach it without a thread hop: a continuation resumed from a read
/// callback puts the task on this executor's queue, and the queue runs in the same pass of the
/// loop (an active libevent event, no syscall, no allocation once the queue has grown).
///
/// ```swift
/// Task(executorPreference: reactor.executor) {
///   // runs on the reactor's thread
/// }
/// ```
///
/// Jobs enqueued from other threads go through the reactor's ``CrossThreadCaller``. After the
/// reactor has shut down, what is left runs on a serial Dispatch queue of its own, so a task
/// that outlives its reactor still finishes (and finds its connections closed).
public final class ReactorExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
  // @unchecked Sendable: `local`, `running`, `event`, `closed` and `reactor` are touched only on
  // the loop thread (enqueue checks the thread, and every other use is from the loop's own
  // callbacks or its shutdown); `serial` is set once, in init, before anyone sees this object;
  // the thread's identity is an atomic; the rest is immutable or Sendable.

  /// Jobs enqueued on the loop thread, run by the next ``drain()``.
  private var local: [QueuedJob] = []
  /// The batch being run (swapped with `local`, so neither array reallocates in steady state).
  private var running: [QueuedJob] = []
  /// The executor actors and isolation checks see: jobs it queues run isolated to it. This
  /// object is the task executor: a task's jobs run with no serial isolation, so the task's
  /// nonisolated calls go on inline instead of bouncing through the queue at every switch.
  private var serial: ReactorSerialExecutor!
  /// The user event that runs the queue (made active when the queue turns non-empty).
  private var event: OpaquePointer?
  /// True once the reactor shut down: jobs go to `afterShutdown`.
  private var closed = false
  private let isClosed = Atomic<Bool>(false)
  /// The loop thread's id (`pthread_t`), kept in step with ``Reactor/loopThread``.
  private let loopThread: Atomic<UInt>
  private let caller: CrossThreadCaller
  private let closes: CloseQueue
  /// The reactor, for async code that reaches it through this executor (loop thread only).
  package private(set) weak var reactor: Reactor?
  private let afterShutdown = DispatchQueue(label: "twine.reactor-executor.after-shutdown")

  /// Jobs one drain runs before it lets the loop poll for I/O again.
  private static let rounds = 16

  init(reactor: Reactor) {
    self.reactor = reactor
    self.caller = reactor.crossThread
    self.closes = reactor.closes
    self.loopThread = Atomic(UInt(reactor.loopThread))
    local.reserveCapacity(64)
    running.reserveCapacity(64)
    serial = ReactorSerialExecutor(self)
    event = event_new(
      reactor.base, -1, 0,
      { _, _, context in Unmanaged<ReactorExecutor>.fromOpaque(context!).takeUnretainedValue().drain() },
      Unmanaged.passUnretained(self).toOpaque())
    if event == nil { reactor.logger.error("event_new failed: async tasks will run only from other threads") }
  }

  deinit { assert(event == nil, "ReactorExecutor freed with its event alive") }

  /// True on the reactor's thread.
  public var isOnLoopThread: Bool { pthread_equal(pthread_self(), pthread_t(loopThread.load(ordering: .relaxed))) != 0 }

  /// The reactor moved to `thread` (``Reactor/run()`` or ``Reactor/iterate(blocking:)`` on another thread).
  func loopMoved(to thread: pthread_t) { loopThread.store(UInt(thread), ordering: .relaxed) }

  /// Queues `job` (a task's, as its task executor) to run on the reactor's thread.
  public func enqueue(_ job: consuming ExecutorJob) {
    enqueue(QueuedJob(job: UnownedJob(job), isolated: false))
  }

  /// Queues `job` from any thread.
  fileprivate func enqueue(_ job: QueuedJob) {
    if isOnLoopThread && !closed {
      local.append(job)
      if local.count == 1, let event { event_active(event, 0, 1) }
      return
    }
    if !isClosed.load(ordering: .acquiring), caller.callFromThread({ self.enqueueOnLoop(job) }) { return }
    afterShutdown.async { self.run(job) }
  }

  /// A job that came through the cross-thread door: queue it, or run it on the fallback queue if the reactor has gone.
  private func enqueueOnLoop(_ job: QueuedJob) {
    guard !closed else {
      afterShutdown.async { self.run(job) }
      return
    }
    local.append(job)
    if local.count == 1, let event { event_active(event, 0, 1) }
  }

  /// Runs `body` on the reactor's thread: now if this is it, otherwise through the cross-thread
  /// door. Returns false (and drops `body`) once the reactor has shut down.
  @discardableResult
  package func onLoop(_ body: @escaping @Sendable () -> Void) -> Bool {
    if isOnLoopThread && !closed {
      body()
      return true
    }
    return caller.callFromThread(body)
  }

  /// Runs `body` on the reactor's thread later (never on the caller's stack). False once shut down.
  @discardableResult
  package func later(_ body: @escaping @Sendable () -> Void) -> Bool { caller.callFromThread(body) }

  private func run(_ job: QueuedJob) {
    if job.isolated {
      job.job.runSynchronously(isolatedTo: serial.asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
    } else {
      job.job.runSynchronously(on: asUnownedTaskExecutor())
    }
  }

  /// Runs the jobs queued so far (those they queue wait for the next batch). Indexes rather
  /// than iterates: an unspecialized iterator (debug builds) allocates per element.
  private func runBatch() {
    swap(&local, &running)
    var index = 0
    while index < running.count {
      run(running[index])
      index += 1
    }
    running.removeAll(keepingCapacity: true)
  }

  /// Runs the queued jobs, and those they queue, up to ``rounds`` batches; closes they cause
  /// run after the batch, from the reactor's close queue (as after a timer's body).
  private func drain() {
    closes.enter()
    var round = 0
    while !local.isEmpty && round < Self.rounds {
      runBatch()
      round += 1
    }
    closes.leave()
    // Still busy: let the loop poll for I/O first, then come back (a zero timeout, next pass).
    if !local.isEmpty, let event {
      var now = timeval(tv_sec: 0, tv_usec: 0)
      event_add(event, &now)
    }
  }

  /// The reactor is shutting down (its connections are closed): runs what their closes
  /// queued, frees the event, and sends later jobs to the fallback queue. Loop thread only.
  func close() {
    guard !closed else { return }
    var round = 0
    while !local.isEmpty && round < 1000 {
      runBatch()
      round += 1
    }
    closed = true
    isClosed.store(true, ordering: .releasing)
    for job in local { afterShutdown.async { self.run(job) } }
    local = []
    if let event {
      event_free(event)
      self.event = nil
    }
  }

  /// Stops unless called on the reactor's thread (the runtime asks, e.g. `assumeIsolated`).
  public func checkIsolated() {
    precondition(isOnLoopThread, "not on the reactor's thread")
  }

  /// The serial executor for actors on the reactor (an actor's `unownedExecutor`): its jobs
  /// run on the reactor's thread, isolated to it.
  public func asUnownedSerialExecutor() -> UnownedSerialExecutor { serial.asUnownedSerialExecutor() }
}

/// A job and whether it runs isolated to the reactor's serial executor (an actor's) or only
/// on the task executor (a task's own code).
private struct QueuedJob: Sendable {
  let job: UnownedJob
  let isolated: Bool
}

/// The reactor's serial executor, as actors see it: queues into the ``ReactorExecutor``'s
/// queue, marked to run isolated. A separate object, so that the runtime never mistakes a
/// task's own jobs (enqueued on the task executor) for isolated ones.
private final class ReactorSerialExecutor: SerialExecutor {
  /// Unowned: the task executor owns this object.
  unowned let owner: ReactorExecutor

  init(_ owner: ReactorExecutor) { self.owner = owner }

  func enqueue(_ job: consuming ExecutorJob) {
    owner.enqueue(QueuedJob(job: UnownedJob(job), isolated: true))
  }

  func checkIsolated() { owner.checkIsolated() }

  func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
}

extension Reactor {
  /// This reactor as a Swift executor (made on first use): ``ReactorExecutor``.
  public var executor: ReactorExecutor {
    if let madeExecutor { return madeExecutor }
    let made = ReactorExecutor(reactor: self)
    madeExecutor = made
    return made
  }
}
