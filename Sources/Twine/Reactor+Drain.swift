/// What a drain did (``Reactor/drain(timeout:then:)``).
public struct DrainResult: Sendable, Equatable, CustomStringConvertible {
  /// Connections open when the drain began.
  public let connections: Int
  /// Connections still open at the deadline, closed then with `.reactorShutdown`.
  public let cut: Int
  /// Seconds from the start of the drain to its end.
  public let seconds: Double

  /// `connections=100 cut=0 seconds=1.234`.
  public var description: String {
    "connections=\(connections) cut=\(cut) seconds=\((seconds * 1000).rounded() / 1000)"
  }
}

/// One drain in progress: its deadline, who waits for it, and its check timer.
final class Drain {
  let started: Double
  let deadline: Double
  let connections: Int
  var completions: [(DrainResult) -> Void]
  var check: (any ScheduledCall)?

  init(started: Double, deadline: Double, connections: Int, completion: @escaping (DrainResult) -> Void) {
    self.started = started
    self.deadline = deadline
    self.connections = connections
    self.completions = [completion]
  }

  /// How often a drain looks whether every connection has closed.
  static let checkInterval = 0.01
}

/// Graceful drain: stop accepting, let open connections finish, close the rest at a deadline
/// (SwiftNIO's `ServerQuiescingHelper`, Envoy's drain).
extension Reactor {
  /// Drains the reactor: closes every listening port at once (closed, not paused, so the
  /// kernel queues no more connections: new connects are refused from now on; connections
  /// still in a port's backlog are reset) and every UDP port, tells each open connection's
  /// protocol (`Protocol.connectionDraining()`), waits until every connection has closed
  /// or `timeout` seconds have passed, then closes the rest with `.reactorShutdown`
  /// (flushing what the kernel takes at once, then FIN) and calls `completion` from the loop.
  ///
  /// The reactor keeps running: call ``stop()`` in `completion` to end ``run()``. A second
  /// call while a drain is in progress waits for the same end (its `timeout` is ignored).
  /// `timeout` 0 closes every connection now. A connection that opens during the drain (a
  /// TLS handshake that was still running, an adopted socket) is told as soon as it opens.
  /// After ``shutdown()`` (or when the reactor shuts down during the drain) `completion` is never called.
  ///
  /// ```swift
  /// reactor.drain(timeout: 10) { result in
  ///   reactor.logger.info("drained", metadata: ["cut": "\(result.cut)"])
  ///   reactor.stop()
  /// }
  /// ```
  public func drain(timeout: Double, then completion: @escaping (DrainResult) -> Void = { _ in }) {
    guard (try? admit("drain")) != nil else { return }
    if let draining {
      draining.completions.append(completion)
      return
    }
    let started = now
    let open = connections.all
    let drain = Drain(
      started: started, deadline: started + max(0, timeout.isFinite ? timeout : 1e9), connections: open.count,
      completion: completion)
    draining = drain
    for port in Array(ports.values) { port.stopListening() }
    for port in Array(udpPorts.values) { port.stopListening() }
    logger.info("draining", metadata: ["connections": "\(open.count)", "timeout": "\(timeout)"])
    closes.enter()  // closes the protocols cause run after every protocol was told
    for connection in open { connection.startDraining() }
    closes.leave()
    checkDrain(drain)
  }

  /// True from ``drain(timeout:then:)`` until its completion ran.
  public var isDraining: Bool { draining != nil }

  /// Ends `drain` when every connection has closed or its deadline has passed; else looks again soon.
  private func checkDrain(_ drain: Drain) {
    let time = now
    guard connections.isEmpty || time >= drain.deadline else {
      drain.check = callLater(min(Drain.checkInterval, drain.deadline - time)) { [weak self, drain] in
        self?.checkDrain(drain)
      }
      return
    }
    let cut = connections.all
    closes.enter()
    for connection in cut { connection.close(.reactorShutdown) }
    closes.leave()
    draining = nil
    let result = DrainResult(connections: drain.connections, cut: cut.count, seconds: now - drain.started)
    logger.info("drained", metadata: ["connections": "\(result.connections)", "cut": "\(result.cut)"])
    for completion in drain.completions { completion(result) }
  }
}

extension TCPConnection {
  /// Tells an open connection's protocol that the reactor is draining, as one of its callbacks.
  func startDraining() {
    guard hasHandles, life.phase == .open, let proto else { return }
    enterCallback()
    proto.connectionDraining()
    leaveCallback()
  }
}
