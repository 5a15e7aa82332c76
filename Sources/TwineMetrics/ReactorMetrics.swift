import CoreMetrics
import Twine

/// Publishes what a reactor's factories and listening ports count through swift-metrics
/// (`apple/swift-metrics`), for whatever backend the program bootstrapped (Prometheus,
/// StatsD, OpenTelemetry, …).
///
/// The connections themselves keep counting as they always do (`ConnectionCounters`,
/// `ListenerStats`); this object reads those counts on a timer and pushes the change to
/// swift-metrics, so the data path does no work for metrics at all. The same timer samples
/// the loop's lag: how late it fires after its due time (`twine_loop_lag_seconds`, a
/// swift-metrics `Timer`, which Prometheus shows as a histogram). Call ``update()`` just
/// before a scrape for counts that are exact at that moment.
///
/// ```swift
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
/// let metrics = ReactorMetrics(reactor: reactor)
/// metrics.watchListeningPorts()  // every port listening now, and their factories
/// metrics.start()
/// ```
///
/// Names (prefix `twine_`; counters end in `_total`), with the dimension `factory` (the
/// name given, or the factory's class; a plain `Factory`'s protocol class) or `listener` (the port's address):
/// `connections_live`, `connections_accepted_total`, `connections_refused_total`,
/// `bytes_received_total`, `bytes_sent_total`, `connections_aborted_overflow_total`,
/// `connections_timed_out_total`, `tls_handshake_failures_total` per factory;
/// `listener_accepted_total`, `listener_refused_total`, `listener_accept_errors_total`,
/// `listener_tls_handshake_failures_total`, `listener_tls_handshakes_refused_total`,
/// `listener_tls_handshakes_pending` per listener; and `loop_lag_seconds`.
/// Use it on the reactor's thread.
public final class ReactorMetrics {
  private weak var reactor: Reactor?
  /// Seconds between samples.
  public let interval: Double
  private var factories: [FactoryWatch] = []
  private var listeners: [ListenerWatch] = []
  private let lag: CoreMetrics.Timer
  private var sampler: (any ScheduledCall)?
  private var due = 0.0

  /// Makes a publisher for `reactor`'s counts, sampled every `interval` seconds once started.
  public init(reactor: Reactor, interval: Double = 1) {
    self.reactor = reactor
    self.interval = max(0.001, interval)
    lag = CoreMetrics.Timer(label: "twine_loop_lag_seconds")
  }

  /// Publishes `factory`'s counters under `name` (default: its type's name). A factory watched
  /// already (or one sharing its counters, as a wrapping factory does) is not added again.
  public func watch(_ factory: Factory, name: String? = nil) {
    let counters = factory.counters
    guard !factories.contains(where: { $0.counters === counters }) else { return }
    var shown = factory
    if let wrapper = factory as? ProxyProtocolFactory { shown = wrapper.wrapped }
    // A plain Factory is named after the protocol it builds; a subclass after itself.
    let named =
      type(of: shown) == Factory.self ? String(describing: shown.protocolType) : String(describing: type(of: shown))
    factories.append(FactoryWatch(counters, name: name ?? named))
  }

  /// Publishes `port`'s own counts under `name` (default: its address), and its factory's.
  public func watch(_ port: ListeningPort, name: String? = nil) {
    guard !listeners.contains(where: { $0.port === port }) else { return }
    listeners.append(ListenerWatch(port, name: name ?? port.address.description))
    watch(port.factory)
  }

  /// Watches every port the reactor listens on now, and their factories.
  public func watchListeningPorts() {
    for port in reactor?.listeningPorts ?? [] { watch(port) }
  }

  /// Starts sampling every ``interval`` seconds on the reactor (lag and counts).
  public func start() {
    guard sampler == nil, let reactor else { return }
    due = reactor.now + interval
    sampler = reactor.callLater(interval) { [weak self] in self?.sample() }
  }

  /// Stops sampling.
  public func stop() {
    sampler?.cancel()
    sampler = nil
  }

  /// Pushes every watched count to swift-metrics now.
  public func update() {
    for index in factories.indices { factories[index].update() }
    for index in listeners.indices { listeners[index].update() }
  }

  private func sample() {
    guard let reactor else { return }
    let now = reactor.now
    lag.recordNanoseconds(Int64(max(0, now - due) * 1e9))
    update()
    due = now + interval
    sampler = reactor.callLater(interval) { [weak self] in self?.sample() }
  }
}

/// A swift-metrics counter fed from a running total: each update adds what the total grew by.
struct DeltaCounter {
  private let counter: Counter
  private var last = 0

  init(_ label: String, _ dimensions: [(String, String)]) {
    counter = Counter(label: label, dimensions: dimensions)
  }

  mutating func update(_ total: Int) {
    guard total > last else { return }
    counter.increment(by: Int64(total - last))
    last = total
  }
}

/// One factory's counters and their swift-metrics mirrors.
struct FactoryWatch {
  let counters: ConnectionCounters
  private let live: Gauge
  private var accepted, refused, bytesIn, bytesOut, overflow, timedOut, handshakes: DeltaCounter

  init(_ counters: ConnectionCounters, name: String) {
    self.counters = counters
    let dimensions = [("factory", name)]
    live = Gauge(label: "twine_connections_live", dimensions: dimensions)
    accepted = DeltaCounter("twine_connections_accepted_total", dimensions)
    refused = DeltaCounter("twine_connections_refused_total", dimensions)
    bytesIn = DeltaCounter("twine_bytes_received_total", dimensions)
    bytesOut = DeltaCounter("twine_bytes_sent_total", dimensions)
    overflow = DeltaCounter("twine_connections_aborted_overflow_total", dimensions)
    timedOut = DeltaCounter("twine_connections_timed_out_total", dimensions)
    handshakes = DeltaCounter("twine_tls_handshake_failures_total", dimensions)
  }

  mutating func update() {
    live.record(counters.live)
    accepted.update(counters.accepted)
    refused.update(counters.refused)
    bytesIn.update(counters.bytesIn)
    bytesOut.update(counters.bytesOut)
    overflow.update(counters.abortedForOverflow)
    timedOut.update(counters.timedOut)
    handshakes.update(counters.tlsHandshakeFailures)
  }
}

/// One listening port's counts and their swift-metrics mirrors.
struct ListenerWatch {
  let port: ListeningPort
  private let pending: Gauge
  private var accepted, refused, acceptErrors, handshakeFailures, handshakesRefused: DeltaCounter

  init(_ port: ListeningPort, name: String) {
    self.port = port
    let dimensions = [("listener", name)]
    pending = Gauge(label: "twine_listener_tls_handshakes_pending", dimensions: dimensions)
    accepted = DeltaCounter("twine_listener_accepted_total", dimensions)
    refused = DeltaCounter("twine_listener_refused_total", dimensions)
    acceptErrors = DeltaCounter("twine_listener_accept_errors_total", dimensions)
    handshakeFailures = DeltaCounter("twine_listener_tls_handshake_failures_total", dimensions)
    handshakesRefused = DeltaCounter("twine_listener_tls_handshakes_refused_total", dimensions)
  }

  mutating func update() {
    pending.record(port.pendingHandshakes)
    accepted.update(port.stats.accepted)
    refused.update(port.stats.refused)
    acceptErrors.update(port.stats.acceptErrors)
    handshakeFailures.update(port.failedHandshakes)
    handshakesRefused.update(port.refusedHandshakes)
  }
}
