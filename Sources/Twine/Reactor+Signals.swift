import CLibevent
import Glibc

/// One signal handler of ``Reactor/handleSignal(_:_:)``: owns its libevent signal event.
final class SignalHandler {
  private var event: OpaquePointer?
  private let body: () -> Void
  private unowned let reactor: Reactor

  init(reactor: Reactor, signal signum: Int32, body: @escaping () -> Void) throws(TwineError) {
    self.reactor = reactor
    self.body = body
    let context = Unmanaged.passUnretained(self).toOpaque()
    guard
      let made = twine_evsignal_new(
        reactor.base, signum,
        { _, _, context in Unmanaged<SignalHandler>.fromOpaque(context!).takeUnretainedValue().fire() }, context)
    else { throw .libevent("evsignal_new") }
    guard event_add(made, nil) == 0 else {
      event_free(made)
      throw .libevent("event_add (signal \(signum))")
    }
    event = made
  }

  /// Frees the event: the signal's previous disposition comes back (libevent restores it).
  deinit { if let event { event_free(event) } }

  private func fire() {
    reactor.closes.enter()  // closes the body causes run when it returns, as for timers
    body()
    reactor.closes.leave()
  }
}

extension Reactor {
  /// Runs `body` on the reactor's thread, from the loop, each time the process receives
  /// `signal` (e.g. `SIGHUP` to reload certificates, `SIGTERM` to drain) until ``shutdown()``.
  /// Several handlers of one signal all run. The signal is unblocked for this thread.
  /// For a reactor that owns its process's signals: over a host's base it throws
  /// ``TwineError/borrowedBase(_:)``; after ``shutdown()``, ``TwineError/reactorShutDown``.
  ///
  /// ```swift
  /// try reactor.handleSignal(SIGTERM) { reactor.drain(timeout: 10) { _ in reactor.stop() } }
  /// ```
  public func handleSignal(_ signal: Int32, _ body: @escaping () -> Void) throws(TwineError) {
    try admit("handleSignal")
    guard ownsBase else { throw .borrowedBase("handleSignal: the host owns the process's signals") }
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, signal)
    pthread_sigmask(SIG_UNBLOCK, &mask, nil)
    signalHandlers.append(try SignalHandler(reactor: self, signal: signal, body: body))
  }
}
