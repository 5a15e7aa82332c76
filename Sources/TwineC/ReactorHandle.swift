import CLibevent
import Glibc
import Logging
import Synchronization
import Twine

/// What a `twine_reactor *` handle stands for: a reactor on the host's base, the thread it
/// belongs to, where its log lines go, and the cross-thread calls it accepted.
///
/// Thread binding: the reactor belongs to the thread that made it until its base's loop
/// first runs a pass; from then on to the thread running that loop (or, earlier, to the
/// thread that calls `twine_reactor_bind_thread`). So a host that makes its bases in
/// `main` and dispatches each in a worker (memcached) can use and destroy each reactor
/// from its worker, after `main` has moved on or the creating thread has exited.
///
/// Unchecked Sendable: ``owner``, ``crossThread`` and ``calls`` are used off the owner
/// thread (atomics and locks); every other use is behind ``wrongThread(_:)``.
final class ReactorHandle: @unchecked Sendable {
  let reactor: Reactor
  /// The thread allowed to use the reactor (a `pthread_t`).
  private let owner = Atomic<UInt>(pthread_self())
  /// True once the base's loop ran its first pass (the binding event fired) or the host bound a thread.
  private let bound = Atomic<Bool>(false)
  let sink: LogSink
  let crossThread: CrossThreadCaller
  /// The calls `twine_call_from_thread` accepted that have not run yet.
  let calls = PendingCalls()
  /// A one-shot event made active at creation: it fires on the loop's first pass, on the
  /// thread that runs it, and binds the reactor there. Freed by ``close()``.
  private var bindEvent: OpaquePointer?

  init(base: OpaquePointer) throws(TwineError) {
    let sink = LogSink()
    self.sink = sink
    reactor = try Reactor(borrowing: base, logger: Logger(label: "twine") { _ in SinkLogHandler(sink: sink) })
    crossThread = reactor.crossThread
    bindEvent = event_new(
      base, -1, 0,
      { _, _, context in Unmanaged<ReactorHandle>.fromOpaque(context!).takeUnretainedValue().loopStarted() },
      Unmanaged.passUnretained(self).toOpaque())
    guard let bindEvent else {
      reactor.shutdown()
      throw .libevent("event_new")
    }
    event_active(bindEvent, 0, 0)
  }

  deinit { assert(bindEvent == nil, "ReactorHandle freed without close()") }

  /// The base's loop ran its first pass on this thread: the reactor is this thread's now.
  private func loopStarted() {
    if !bound.load(ordering: .acquiring) { bind() }
    sink.loopStarted()
  }

  /// Makes the calling thread the reactor's. Refused (false) once the reactor is bound to another thread.
  func bindToCallingThread() -> Bool {
    if bound.load(ordering: .acquiring), pthread_equal(pthread_self(), owner.load(ordering: .acquiring)) == 0 {
      return false
    }
    bind()
    return true
  }

  private func bind() {
    owner.store(pthread_self(), ordering: .releasing)
    bound.store(true, ordering: .releasing)
    reactor.bindToCurrentThread()
  }

  /// Nil on the reactor's thread; otherwise records why and returns `TWINE_EWRONGTHREAD`.
  func wrongThread(_ function: String) -> Int32? {
    guard pthread_equal(pthread_self(), owner.load(ordering: .acquiring)) == 0 else { return nil }
    return fail(
      .wrongThread,
      "\(function) called from another thread than the reactor's (the one running its base's loop, or "
        + "the one that made it before the loop ran); use twine_call_from_thread")
  }

  /// Shuts the reactor down and calls back every accepted call that has not run, as cancelled.
  /// Called once, by destroy, after the handle left the table (no call can be accepted any more).
  func close() {
    reactor.shutdown()
    if let bindEvent {
      event_free(bindEvent)
      self.bindEvent = nil
    }
    sink.loopStarted()  // early lines not sent to a callback go to stderr now
    calls.cancelAll()
  }

  /// Every live `twine_reactor *`.
  static let table = HandleTable<ReactorHandle>(.reactor)
}
