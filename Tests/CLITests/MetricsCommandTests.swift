import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine … --metrics PORT`: the Prometheus page after a scripted run.
@Suite("twine --metrics")
struct MetricsCommandTests {
  /// `GET path` from 127.0.0.1:`port`: the whole response as text.
  static func get(_ port: Int, _ path: String = "/metrics") throws -> String {
    let client = try TCPClient.connect(port: port)
    defer { client.close() }
    try client.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return String(decoding: try client.readToEnd().bytes, as: UTF8.self)
  }

  /// The value of the sample `name{labels}` on the page, nil when it is absent.
  static func value(_ page: String, _ sample: String) -> Double? {
    for line in page.split(separator: "\n") where line.hasPrefix(sample + " ") {
      return Double(line.dropFirst(sample.count + 1))
    }
    return nil
  }

  @Test("after 3 echo connections of 100 bytes and 2 refused ones, the page's counters say exactly that")
  func scriptedRun() throws {
    let server = try TwineServer(["echo", "--port", "0", "--max-connections", "3", "--metrics", "0"])
    defer { server.kill() }
    let printed = waitUntil(timeout: Timeouts.startup) { server.stdoutText.contains("metrics on ") }
    #expect(printed, "\(server.stdoutText)")
    let line = try #require(server.stdoutText.split(separator: "\n").first { $0.hasPrefix("metrics on 127.0.0.1:") })
    let metricsPort = try #require(Int(line.split(separator: ":").last!))
    // Three held open at once, then two more that the limit refuses.
    var clients: [TCPClient] = []
    for index in 0..<3 {
      let client = try TCPClient.connect(port: server.port)
      let text = String(repeating: "\(index)", count: 99) + "\n"
      #expect(try client.echo(text) == text)
      clients.append(client)
    }
    for _ in 0..<2 {
      let refused = try TCPClient.connect(port: server.port)
      _ = try refused.readToEnd()
      refused.close()
    }
    for client in clients { client.close() }
    let factory = "{factory=\"CountingFactory\"}"
    let listener = "{listener=\"\(server.address)\"}"
    var page = ""
    let settled = try waitUntil(timeout: Timeouts.io) {
      page = try Self.get(metricsPort)
      return Self.value(page, "twine_connections_live" + factory) == 0
        && Self.value(page, "twine_connections_refused_total" + factory) == 2
    }
    #expect(settled, "\(page)")
    #expect(page.hasPrefix("HTTP/1.1 200 OK\r\n"))
    #expect(Self.value(page, "twine_connections_accepted_total" + factory) == 5)
    #expect(Self.value(page, "twine_bytes_received_total" + factory) == 300)
    let refusal = Double("Too many connections, try later".utf8.count)
    #expect(Self.value(page, "twine_bytes_sent_total" + factory) == 300 + 2 * refusal)
    #expect(Self.value(page, "twine_listener_accepted_total" + listener) == 5)
    #expect(Self.value(page, "twine_listener_accept_errors_total" + listener) == 0)
    #expect(Self.value(page, "twine_connections_aborted_overflow_total" + factory) == 0)
    #expect(page.contains("# TYPE twine_connections_accepted_total counter"))
    #expect(page.contains("# TYPE twine_loop_lag_seconds histogram"), "\(page)")
    let samples = try waitUntil(timeout: Timeouts.io) {
      page = try Self.get(metricsPort)
      return (Self.value(page, "twine_loop_lag_seconds_count") ?? 0) >= 1
    }
    #expect(samples, "\(page)")
    #expect(page.contains("twine_loop_lag_seconds_bucket{le=\"0.001\"}"), "\(page)")
    #expect(try Self.get(metricsPort, "/other").hasPrefix("HTTP/1.1 404"))
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0))
  }
}
