import CoreMetrics
import Prometheus
import Twine
import TwineMetrics

/// Publishes the reactor's counters (every port listening now, and their factories) and its
/// loop lag through swift-metrics into a Prometheus registry, and serves that registry's
/// text on 127.0.0.1:`port`. Returns the address it serves on.
func serveMetrics(_ reactor: Reactor, port: Int) throws -> String {
  let registry = PrometheusCollectorRegistry()
  var backend = PrometheusMetricsFactory(registry: registry)
  backend.durationHistogramBuckets["twine_loop_lag_seconds"] = [
    .microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10),
    .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1),
  ]
  MetricsSystem.bootstrap(backend)
  let metrics = ReactorMetrics(reactor: reactor, interval: 0.5)
  metrics.watchListeningPorts()
  metrics.start()
  let page = Factory { _ -> MetricsPage? in MetricsPage(registry: registry, metrics: metrics) }
  return try reactor.listenTCP(port, factory: page, interface: "127.0.0.1").address.description
}

/// One HTTP/1.x exchange: reads the request head, answers `GET /metrics` (or `/`) with the
/// registry's text, anything else with 404, and closes.
final class MetricsPage: Protocol {
  private let registry: PrometheusCollectorRegistry?
  private let metrics: ReactorMetrics?
  private var head: [UInt8] = []
  /// The longest request head read.
  static let maxHead = 8192

  init(registry: PrometheusCollectorRegistry, metrics: ReactorMetrics) {
    self.registry = registry
    self.metrics = metrics
  }

  required init() {
    registry = nil
    metrics = nil
  }

  override func dataReceived(_ data: RawSpan) {
    guard !transport.disconnecting else { return }
    head += data.bytes
    guard let end = head.firstRange(of: Array("\r\n\r\n".utf8)) else {
      if head.count > Self.maxHead { respond("431 Request Header Fields Too Large", body: []) }
      return
    }
    let requestLine = String(decoding: head[..<end.lowerBound].prefix { $0 != 13 }, as: UTF8.self)
    let parts = requestLine.split(separator: " ")
    guard parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1] == "/", let registry else {
      return respond("404 Not Found", body: Array("try GET /metrics\n".utf8))
    }
    metrics?.update()
    var body: [UInt8] = []
    registry.emit(into: &body)
    respond("200 OK", body: body)
  }

  private func respond(_ status: String, body: [UInt8]) {
    transport.write(
      "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n")
    transport.write(body)
    transport.loseConnection()
  }
}
