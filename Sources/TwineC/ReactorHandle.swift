import Glibc
import Logging
import Twine

/// What a `twine_reactor *` points to: a reactor on the host's base, the thread it
/// belongs to, and where its log lines go.
///
/// Unchecked Sendable: only ``crossThread`` and ``owner`` are used off the owner
/// thread; every other use is behind ``wrongThread(_:)``.
final class ReactorHandle: @unchecked Sendable {
  let reactor: Reactor
  /// The thread that called `twine_reactor_new`: the only one allowed to use the reactor.
  let owner = pthread_self()
  let sink: LogSink
  let crossThread: CrossThreadCaller

  init(base: OpaquePointer) throws(TwineError) {
    let sink = LogSink()
    reactor = try Reactor(borrowing: base, logger: Logger(label: "twine") { _ in SinkLogHandler(sink: sink) })
    self.sink = sink
    crossThread = reactor.crossThread
  }

  /// Nil on the owner thread; otherwise records why and returns `TWINE_EWRONGTHREAD`.
  func wrongThread(_ function: String) -> Int32? {
    guard pthread_equal(pthread_self(), owner) == 0 else { return nil }
    return fail(
      .wrongThread,
      "\(function) called from another thread than the reactor's (the one that called twine_reactor_new); "
        + "use twine_call_from_thread")
  }

  /// Every live `twine_reactor *`.
  static let table = HandleTable<ReactorHandle>()
}
