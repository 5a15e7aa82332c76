import Glibc
import Twine

/// The production lifecycle of `twine`'s stream servers (issue 16): signals, graceful
/// drain, zero-downtime restart through a control socket, certificate reload.
extension LifecycleOptions {
  /// SIGINT stops at once. SIGTERM drains for `--drain-timeout` seconds and then stops (0:
  /// at once); a second SIGTERM stops at once. SIGHUP reloads every TLS port's certificate
  /// and key for new handshakes (a bad pair is refused with a log line; the old one stays).
  func installSignals(on reactor: Reactor) throws {
    let drainTimeout = self.drainTimeout
    var terms = 0
    try reactor.handleSignal(SIGINT) { [unowned reactor] in reactor.stop() }
    try reactor.handleSignal(SIGTERM) { [unowned reactor] in
      terms += 1
      guard terms == 1, drainTimeout > 0 else { return reactor.stop() }
      reactor.drain(timeout: drainTimeout) { _ in reactor.stop() }
    }
    try reactor.handleSignal(SIGHUP) { [unowned reactor] in reloadCertificates(reactor) }
  }

  /// With `--control`, opens the control socket: a successor's takeover drains this server
  /// for `--drain-timeout` seconds, then it stops. `reload` answers with one line per TLS port.
  func openControl(on reactor: Reactor) throws {
    guard let control else { return }
    let drainTimeout = self.drainTimeout
    let socket = try reactor.listenControl(control) { [unowned reactor] in
      reactor.drain(timeout: drainTimeout) { _ in reactor.stop() }
    }
    socket.commands["reload"] = { [unowned reactor] in reloadCertificates(reactor) }
  }

  /// With `--takeover`, takes over the listening sockets of the server whose control socket
  /// that is, serving them with `factory` (over TLS with `tls`): their `listening on`
  /// addresses, one per line (the caller prints the first line's prefix). Nil without `--takeover`.
  func takeOver(_ reactor: Reactor, factory: Factory, tls: TLSOptions?, maxHandshakes: Int = 1024) throws -> String? {
    guard let takeover else { return nil }
    let ports = try reactor.takeOverListeningSockets(from: takeover, factory: factory, tls: tls)
    for port in ports { port.maxPendingHandshakes = maxHandshakes }
    return ports.map(\.address.description).joined(separator: "\nlistening on ")
  }
}

/// Reloads the certificate and key of every TLS port from their files; logs and returns
/// one line per port (`reloaded ADDRESS` or `refused ADDRESS: why`).
@discardableResult
func reloadCertificates(_ reactor: Reactor) -> String {
  let results = reactor.reloadCertificates()
  guard !results.isEmpty else {
    reactor.logger.info("reload: no TLS listener")
    return "reloaded nothing (no TLS listener)"
  }
  var lines: [String] = []
  for (port, error) in results {
    if let error {
      reactor.logger.error(
        "certificate reload refused; the old certificate stays in use",
        metadata: ["port": "\(port.address)", "error": "\(error)"])
      lines.append("refused \(port.address): \(error)")
    } else {
      reactor.logger.info("certificate reloaded", metadata: ["port": "\(port.address)"])
      lines.append("reloaded \(port.address)")
    }
  }
  return lines.joined(separator: "; ")
}
