import CLibevent
import Glibc
import Logging

/// The event loop (Twisted's reactor) on a libevent `event_base`.
///
/// Single-threaded: create it, listen, connect and schedule on one thread, then
/// call ``run()`` on that thread. ``crossThread`` is the one door other threads may use.
/// ``init(borrowing:logger:)`` hangs a reactor on a host's `event_base` instead (see Reactor+Borrowed.swift).
///
/// ```swift
/// let reactor = try Reactor()
/// try reactor.listenTCP(8025, factory: Factory(Echo.self))
/// reactor.run()
/// ```
public final class Reactor: Scheduler {
  /// The `event_base` every object of this reactor registers on.
  let base: OpaquePointer
  /// False for a host's base (``init(borrowing:logger:)``): never freed, and its loop never run or broken unasked.
  let ownsBase: Bool
  /// The thread the reactor belongs to: the one that made it, or the one that last ran it.
  var loopThread = pthread_self() {
    didSet { madeExecutor?.loopMoved(to: loopThread) }
  }
  /// Runs Swift tasks on the loop (ReactorExecutor.swift), made on first use of ``executor``.
  var madeExecutor: ReactorExecutor?
  /// Where connects, disconnects and accept trouble are logged (connects at debug level).
  public var logger: Logger
  /// Open connections: each stays alive here until its bufferevent is freed.
  let connections = ConnectionList()
  /// Closes caused while a callback runs wait here and run one after another (never nested).
  let closes = CloseQueue()
  /// Listening ports, until `stopListening`.
  var ports: [ObjectIdentifier: ListeningPort] = [:]
  /// UDP ports, until `stopListening`.
  var udpPorts: [ObjectIdentifier: UDPPort] = [:]
  /// Pending delayed calls, until they fire or are cancelled.
  var delayedCalls: [ObjectIdentifier: DelayedCall] = [:]
  private let threadCaller: CrossThreadCaller
  /// Every connection reads into this one buffer and lends it to `dataReceived`; callbacks
  /// never nest, so one buffer per reactor serves all its connections.
  let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 << 10, alignment: 16)
  /// True while `run()` or `iterate()` is dispatching: the loop is not re-entrant.
  private var dispatching = false
  private var signalEvents: [OpaquePointer] = []
  private(set) var resolver: Resolver?
  /// libevent rate-limit groups, one per ``RateLimitGroup`` used here, until the reactor goes.
  private var rateLimitGroups: [ObjectIdentifier: (group: RateLimitGroup, shared: SharedRateLimit)] = [:]
  /// Replaced resolvers, kept until their cancelled lookups' callbacks have run.
  private var retiredResolvers: [Resolver] = []
  /// TLS contexts made so far, one per distinct certificate, key and trust (Reactor+TLS.swift).
  var tlsContexts: [TLSContext.Key: TLSContext] = [:]
  /// True once ``shutdown()`` began. Read only by ``admit(_:)`` (the gate every creator
  /// passes) and by the loop's own `run`/`iterate`/`shutdown`: private to keep it that way.
  private var isShutDown = false
  /// Set by ``stop()``; a stop asked for before ``run()`` is kept, not lost.
  private var stopRequested = false
  /// What SIGINT and SIGTERM do instead of ``stop()`` (a reactor group stops all its reactors).
  var onStopSignal: (() -> Void)?
  /// The drain in progress, if any (Reactor+Drain.swift).
  var draining: Drain?
  /// Handlers of ``handleSignal(_:_:)`` (Reactor+Signals.swift), kept while their events are registered.
  var signalHandlers: [SignalHandler] = []

  /// Makes a reactor with its own `event_base`. SIGPIPE is ignored from now on.
  public convenience init(logger: Logger = Logger(label: "twine")) throws(TwineError) {
    guard let base = event_base_new() else { throw .libevent("event_base_new") }
    try self.init(base: base, ownsBase: true, logger: logger)
    signal(SIGPIPE, SIG_IGN)
  }

  /// Adopts `base` (owned or borrowed); on failure frees it only if owned.
  init(base: OpaquePointer, ownsBase: Bool, logger: Logger) throws(TwineError) {
    let caller: CrossThreadCaller
    do {
      caller = try CrossThreadCaller(base: base)
    } catch {
      if ownsBase { event_base_free(base) }
      throw error
    }
    self.base = base
    self.ownsBase = ownsBase
    self.logger = logger
    self.threadCaller = caller
  }

  deinit {
    shutdown()
    var resolvers = retiredResolvers
    if let resolver { resolvers.append(resolver) }
    resolver = nil
    retiredResolvers = []
    // Freed bufferevents leave their rate-limit groups in libevent's finalizers, which
    // also run from the loop: a group freed before that aborts.
    var groups: [AnyObject] = rateLimitGroups.values.map(\.shared)
    rateLimitGroups = [:]
    if ownsBase {
      // One more pass of the loop before the frees: cancelled lookups finish through
      // libevent's deferred callbacks, freed bufferevents leave their rate-limit groups and
      // close their sockets in finalizers, all run from the loop (a group freed before its
      // members aborts; a deferred callback event_base_free cancels leaves its socket open).
      event_base_loop(base, EVLOOP_NONBLOCK)
      resolvers = []  // the DNS bases and rate-limit groups go before the event base
      groups = []
      event_base_free(base)
    } else {
      // The host's loop runs those callbacks and finalizers; what waits on them goes once it has.
      HostLoopLeftovers.free(resolvers: resolvers, groups: groups, on: base)
    }
    readBuffer.deallocate()
  }

  /// The thread-safe door into this reactor: `reactor.crossThread.callFromThread { ... }`.
  public var crossThread: CrossThreadCaller { threadCaller }

  /// Runs the loop until ``stop()``, then closes every port and connection
  /// (`connectionLost(.reactorShutdown)`). Returns at once if already shut down or
  /// when called from inside a callback (the loop is not re-entrant).
  public func run() {
    guard !isShutDown, !dispatching else { return }
    loopThread = pthread_self()
    if !stopRequested {
      dispatching = true
      event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY)
      dispatching = false
    }
    stopRequested = false
    let shutInside = isShutDown  // shutdown() from a callback could not run the loop then
    shutdown()
    if shutInside && ownsBase { event_base_loop(base, EVLOOP_NONBLOCK) }
  }

  /// Runs one pass of the loop: waits for events (unless `blocking` is false), handles them, returns.
  /// Does nothing when called from inside a callback: the loop is not re-entrant.
  public func iterate(blocking: Bool = true) {
    guard !isShutDown, !dispatching else { return }
    loopThread = pthread_self()
    dispatching = true
    event_base_loop(base, EVLOOP_ONCE | (blocking ? 0 : EVLOOP_NONBLOCK))
    dispatching = false
  }

  /// Makes ``run()`` return after the callback that called this one (or at once, if
  /// called before it). Safe from any callback on the reactor's thread. Breaks only a
  /// loop that ``run()`` or ``iterate()`` is running: never a host's own dispatch.
  public func stop() {
    assertOnLoopThread()
    stopRequested = true
    if dispatching { event_base_loopbreak(base) }
  }

  /// Makes SIGINT and SIGTERM call ``stop()``. For a reactor that owns its process's signals;
  /// a reactor over a host's base throws ``TwineError/borrowedBase(_:)``: signals are the host's.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown``.
  public func installSignalHandlers() throws(TwineError) {
    try admit("installSignalHandlers")
    guard ownsBase else { throw .borrowedBase("installSignalHandlers: the host owns the process's signals") }
    // A parent may have started us with these blocked (the mask is inherited): unblock them.
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, SIGINT)
    sigaddset(&mask, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &mask, nil)
    for signum in [SIGINT, SIGTERM] {
      let context = Unmanaged.passUnretained(self).toOpaque()
      guard
        let event = twine_evsignal_new(
          base, signum,
          { _, _, context in Unmanaged<Reactor>.fromOpaque(context!).takeUnretainedValue().stopSignalled() },
          context)
      else { throw .libevent("evsignal_new") }
      event_add(event, nil)
      signalEvents.append(event)
    }
  }

  /// SIGINT or SIGTERM arrived.
  private func stopSignalled() {
    if let onStopSignal { onStopSignal() } else { stop() }
  }

  /// Stops listening, closes every connection (`.reactorShutdown`), cancels every delayed
  /// call and host lookup, and closes the cross-thread door. The reactor cannot run
  /// again, and makes no new ports, connections or timers. Called from a callback, it
  /// also makes ``run()`` return.
  public func shutdown() {
    guard !isShutDown else { return }
    assertOnLoopThread()
    isShutDown = true
    if dispatching {
      stopRequested = true
      event_base_loopbreak(base)
    }
    resolver?.cancelAll()
    for port in Array(ports.values) { port.stopListening() }
    for port in Array(udpPorts.values) { port.stopListening() }
    for connection in connections.all { connection.close(.reactorShutdown) }
    // Closing may have scheduled more (a reconnect, a timer): those were refused; cancel what is left.
    // Tasks woken by those closes finish here; later jobs go to the executor's fallback queue.
    madeExecutor?.close()
    for call in Array(delayedCalls.values) { call.cancel() }
    for event in signalEvents { event_free(event) }
    signalEvents = []
    signalHandlers = []
    draining = nil
    threadCaller.close()
    // A freed bufferevent closes its socket in a libevent finalizer, which runs from the
    // loop: run it now, so peers see the close even if this reactor object lives on.
    // Never a host's loop: there the finalizers run on its next pass (or in event_base_free).
    if !dispatching && ownsBase { event_base_loop(base, EVLOOP_NONBLOCK) }
  }

  /// The one registration gate: every object this reactor makes on its base passes it
  /// first (ports, UDP ports, connection attempts, timers, resolvers, rate-limit groups,
  /// TLS contexts, adopted sockets, signal handlers). Debug builds stop when it is called
  /// off the loop thread; after ``shutdown()`` it throws ``TwineError/reactorShutDown``,
  /// so nothing registers once shutdown began and nothing outlives the base.
  /// `what` names the creator in the thread assertion.
  func admit(_ what: StaticString) throws(TwineError) {
    assertOnLoopThread(what)
    guard !isShutDown else { throw .reactorShutDown }
  }

  /// The libevent group for `group` on this reactor, made on first use; nil after ``shutdown()``.
  func rateLimitGroup(for group: RateLimitGroup) -> OpaquePointer? {
    guard (try? admit("rateLimitGroup")) != nil else { return nil }
    if let known = rateLimitGroups[ObjectIdentifier(group)] { return known.shared.group }
    guard let made = SharedRateLimit(group.limit, base: base) else { return nil }
    rateLimitGroups[ObjectIdentifier(group)] = (group, made)
    return made.group
  }

  /// Sends host-name lookups to `nameserver` ("IP" or "IP:port") instead of the
  /// servers in /etc/resolv.conf (/etc/hosts is still read). Lookups in flight on the
  /// previous resolver are cancelled. After ``shutdown()`` it throws
  /// ``TwineError/reactorShutDown`` and makes no resolver.
  public func useNameserver(_ nameserver: String) throws(TwineError) {
    try admit("useNameserver")
    let made = try Resolver(base: base, nameserver: nameserver)
    if let resolver { retiredResolvers.append(resolver) }
    resolver?.cancelAll(.lookupFailed("the resolver was replaced (useNameserver)"))
    resolver = made
  }

  /// The DNS resolver, made on first use; throws ``TwineError/reactorShutDown`` after ``shutdown()``.
  func sharedResolver() throws(TwineError) -> Resolver {
    try admit("sharedResolver")
    if let resolver { return resolver }
    let made = try Resolver(base: base)
    resolver = made
    return made
  }

  // MARK: Scheduler

  /// Seconds on the monotonic clock.
  public var now: Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
  }

  /// Runs `body` on the reactor's thread after `delay` seconds (Twisted's `callLater`).
  /// After ``shutdown()`` the call comes back inactive (`isActive` false): no timer is made
  /// and `body` never runs.
  @discardableResult
  public func callLater(_ delay: Double, _ body: @escaping () -> Void) -> any ScheduledCall {
    do {
      try admit("callLater")
    } catch {
      return DelayedCall(refusedAt: now + max(0, delay))
    }
    return DelayedCall(reactor: self, delay: delay, body: body)
  }
}
