import Glibc
import Logging
import Synchronization

/// Every core: N reactors, each with its own `event_base` on its own thread (a
/// ``ReactorThread``), serving one port together. A connection stays on the reactor that
/// accepted it for its whole life: its protocol's callbacks all run on that thread, and the
/// data path takes no lock (SwiftNIO's `MultiThreadedEventLoopGroup`; memcached and Envoy
/// on libevent).
///
/// Each reactor gets its own `Factory`, made on its thread by a `@Sendable` closure, so a
/// factory and its protocols stay single-threaded; what the reactors share must be
/// `Sendable` (the compiler checks the closure's captures): striped `ConnectionCounters`,
/// `ConnectionSlots`, a lock-protected room.
///
/// ```swift
/// let group = try ReactorGroup(threads: 4)
/// let counters = ConnectionCounters(stripes: group.count)
/// let slots = ConnectionSlots(limit: 100)
/// try group.listenTCP(8025) { reactor in
///   CountingFactory(slots: slots, counters: counters.stripe(reactor.index))
/// }
/// try group.installSignalHandlers()
/// group.run()  // until SIGINT, SIGTERM or group.stop()
/// ```
///
/// The reactors run from the group's creation; ``run()`` waits for them to stop.
public final class ReactorGroup: Sendable {
  /// The reactors, one per thread, in index order.
  public let reactors: [ReactorThread]
  private let cursor = Atomic<Int>(0)
  /// True once some caller took the threads to join them.
  private let joined = LockedValue(false)

  /// Starts `threads` reactors (0: one per core, ``coreCount``), each logging to `logger`
  /// with `reactor: INDEX` metadata. Throws when one cannot be made (the others stop again).
  public init(threads: Int = 0, logger: Logger = Logger(label: "twine")) throws(TwineError) {
    let count = threads > 0 ? threads : Self.coreCount
    var made: [ReactorThread] = []
    for index in 0..<count {
      do {
        made.append(try ReactorThread(index: index, logger: logger))
      } catch {
        for reactor in made { reactor.stop() }
        for reactor in made { reactor.join() }
        throw error
      }
    }
    reactors = made
  }

  deinit {
    stop()
    joinAll()
  }

  /// The number of cores online (at least 1): what `threads: 0` makes.
  public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

  /// How many reactors the group has.
  public var count: Int { reactors.count }

  /// The next reactor, round-robin: where to put a client connection or a timer.
  public func next() -> ReactorThread {
    reactors[cursor.wrappingAdd(1, ordering: .relaxed).oldValue % reactors.count]
  }

  /// Waits until every reactor has stopped (``stop()``, or a signal after
  /// ``installSignalHandlers()``) and its thread has ended; by then each reactor closed its
  /// ports and connections (`connectionLost(.reactorShutdown)`) and freed its `event_base`.
  /// Returns at once when called on one of the group's threads or when another call waits already.
  public func run() {
    guard !reactors.contains(where: \.isCurrent) else { return }
    joinAll()
  }

  /// Asks every reactor to stop; ``run()`` returns once all have. Any thread.
  public func stop() {
    for reactor in reactors { reactor.stop() }
  }

  /// Makes SIGINT and SIGTERM stop the whole group. The signals are watched by reactor 0
  /// (one `event_base` per process may own them).
  public func installSignalHandlers() throws(TwineError) {
    try reactors[0].perform { [weak self] reactor throws(TwineError) in
      reactor.onStopSignal = { self?.stop() }
      try reactor.installSignalHandlers()
    }
  }

  private func joinAll() {
    let first = joined.withLock { joined in
      defer { joined = true }
      return !joined
    }
    guard first else { return }
    for reactor in reactors { reactor.join() }
  }
}
