import CLibevent
import Glibc
import Logging

/// A reactor over a host's `event_base`: for programs that already own a libevent loop.
extension Reactor {
  /// Makes a reactor that registers its ports, connections and timers on `eventBase`, an
  /// `event_base` the host made and keeps running itself (`event_base_dispatch`).
  ///
  /// The reactor never frees the base and never runs or breaks its loop unless asked
  /// (``run()`` and ``iterate()`` still work, and ``stop()`` breaks only those). It installs
  /// no signal handlers (``installSignalHandlers()`` throws) and leaves the process's
  /// signal dispositions alone: libevent's queued writes use plain `writev`, so a host
  /// must ignore SIGPIPE itself (`signal(SIGPIPE, SIG_IGN)`); a warning is logged if it does not.
  /// ``shutdown()`` (also run by `deinit`) removes every event Twine added and closes its
  /// sockets; the host's own events stay registered.
  ///
  /// Thread rule: make it on the thread that runs the base's loop, and call it only there
  /// (debug builds assert it); ``crossThread`` is the door for other threads.
  /// `eventBase` is the host's `struct event_base *`: the one raw handle in Twine's API.
  public convenience init(borrowing eventBase: OpaquePointer, logger: Logger = Logger(label: "twine"))
    throws(TwineError)
  {
    try self.init(base: eventBase, ownsBase: false, logger: logger)
    connections.claimsDescriptors = true  // hosts pass sockets around: one owner per fd (DescriptorClaims)
    if Self.sigpipeKillsProcess {
      self.logger.warning(
        "SIGPIPE is not ignored: a peer that goes away while output is queued would kill the process; call signal(SIGPIPE, SIG_IGN)"
      )
    }
  }

  /// True when SIGPIPE still has its default action (terminate the process).
  static var sigpipeKillsProcess: Bool {
    var current = sigaction()
    guard sigaction(SIGPIPE, nil, &current) == 0 else { return false }
    return current.__sigaction_handler.sa_handler == nil && current.sa_flags & SA_SIGINFO == 0
  }

  /// Makes the calling thread the reactor's thread: for a host that makes its bases on one
  /// thread and dispatches each on another (memcached's workers). Call it on the thread that
  /// runs the base's loop, before that loop touches the reactor, and only once the previous
  /// thread has stopped using it: the handover is the host's (a thread start or a lock orders it).
  public func bindToCurrentThread() {
    loopThread = pthread_self()
  }

  /// True on the reactor's thread: the one that made it, or the one that last ran ``run()`` or ``iterate()``.
  public var isOnLoopThread: Bool { pthread_equal(pthread_self(), loopThread) != 0 }

  /// Debug builds: stops with a clear message when called off the reactor's thread.
  func assertOnLoopThread(_ function: StaticString = #function) {
    assert(isOnLoopThread, "Reactor.\(function) called off the reactor's thread; use crossThread.callFromThread")
  }
}
