import ArgumentParser
import TutorialServers
import Twine
import TwineProtocols

/// `twine echo --threads N`: the counting Echo on a reactor group. The limit is one set of
/// ``ConnectionSlots`` all reactors share, so it stays exact across them.
extension EchoCommand {
  /// The flags a group cannot serve.
  func validateThreads() throws {
    try threading.validate(with: options)
    guard threading.threads != 1 else { return }
    guard !useAsync else { throw ValidationError("--async serves on one reactor: leave --threads at 1") }
    guard !udp else { throw ValidationError("--udp serves on one thread: leave --threads at 1") }
    guard totalRateLimit == nil else {
      throw ValidationError("--total-rate-limit is kept per reactor: use it with --threads 1")
    }
  }

  /// Serves on `threading.count` reactors: TCP, TLS (`SO_REUSEPORT`) or a UNIX-domain socket (round robin).
  func runGroup() throws {
    let threads = threading.count
    let slots = ConnectionSlots(limit: maxConnections)
    let counters = ConnectionCounters(stripes: threads)
    let perConnection = rateLimit.map {
      RateLimit(readBytesPerSecond: $0, writeBytesPerSecond: $0, burst: max(1, $0 / 4))
    }
    let make: @Sendable (ReactorThread) -> Factory = { home in
      let echo = CountingFactory(slots: slots, counters: counters.stripe(home.index))
      guard let perConnection else { return echo }
      return ThrottlingFactory(wrapping: echo, perConnection: perConnection)
    }
    let tls = try tlsOptions()
    let handshakes = maxHandshakes ?? maxConnections
    try serveGroup(options, threads: threads, counters: counters) { group in
      if let unix { return try group.listenUNIX(unix, factory: make).address.description }
      guard let tls else {
        return try group.listenTCP(options.port, interface: options.interface, factory: make).address.description
      }
      do {
        return try group.listenSSL(
          options.port, tls: tls, interface: options.interface,
          maxPendingHandshakes: (handshakes + threads - 1) / threads, factory: make
        ).address.description
      } catch TwineError.tls(let reason) where reason.hasSuffix(TLSOptions.encryptedKeyWithoutPassPhrase) {
        throw TwineError.tls(reason + "; give its pass phrase with --tls-key-password-file")
      }
    } summary: {
      ["accepted": "\(counters.accepted)", "refused": "\(counters.refused)"]
    }
  }
}
