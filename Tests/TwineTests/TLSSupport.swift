import Foundation
import Glibc
import LoopbackTestSupport
import Testing

@testable import Twine

/// Self-signed test certificates, made once per test run with Debian's `openssl` CLI in
/// a temporary folder (removed at exit). Nothing secret is committed.
enum TestCertificates {
  /// A certificate and its key, as PEM file paths.
  struct Pair: Sendable {
    let certificate: String
    let key: String
  }

  /// For `localhost` and 127.0.0.1.
  static var localhost: Pair { made.localhost }
  /// For `wrong.example` only: a name check against localhost must fail.
  static var wrongName: Pair { made.wrongName }
  /// A client's certificate (CN=twine-test-client), its own CA.
  static var client: Pair { made.client }

  /// Server options with the localhost certificate.
  static func server(handshakeTimeout: Double = 30, clientCA: String? = nil) -> TLSOptions {
    .server(
      certificateFile: localhost.certificate, privateKeyFile: localhost.key, clientCAFile: clientCA,
      handshakeTimeout: handshakeTimeout)
  }

  /// Client options that trust the localhost certificate (and nothing else).
  static func trustingClient() -> TLSOptions { .client(trustedCAFile: localhost.certificate) }

  private struct Made: Sendable {
    let folder: String
    let localhost: Pair
    let wrongName: Pair
    let client: Pair
  }

  private static let made: Made = {
    let folder = FileManager.default.temporaryDirectory
      .appendingPathComponent("twine-tls-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let made = Made(
      folder: folder,
      localhost: generate(in: folder, name: "localhost", subjectAltName: "DNS:localhost,IP:127.0.0.1"),
      wrongName: generate(in: folder, name: "wrong.example", subjectAltName: "DNS:wrong.example"),
      client: generate(in: folder, name: "twine-test-client", subjectAltName: "DNS:twine-test-client"))
    atexit { try? FileManager.default.removeItem(atPath: TestCertificates.made.folder) }
    return made
  }()

  /// `openssl req -x509`: a P-256 key and a self-signed certificate valid for two days.
  /// (posix_spawn rather than Foundation's Process, which leaks a weak reference per run.)
  private static func generate(in folder: String, name: String, subjectAltName: String) -> Pair {
    let pair = Pair(certificate: "\(folder)/\(name).crt", key: "\(folder)/\(name).key")
    let arguments = [
      openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", pair.key, "-out", pair.certificate, "-days", "2", "-subj", "/CN=\(name)",
      "-addext", "subjectAltName=\(subjectAltName)",
    ]
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for arg in argv { free(arg) } }
    var child: pid_t = 0
    let spawned = posix_spawn(&child, openssl, &actions, nil, argv, environ)
    precondition(spawned == 0, "cannot run \(openssl) (the Makefile's deps-test installs openssl)")
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    precondition(status == 0, "openssl req failed for \(name) (status \(status))")
    return pair
  }

  /// The openssl CLI.
  static let openssl: String = {
    for folder in ["/usr/bin", "/usr/local/bin", "/bin"] where access("\(folder)/openssl", X_OK) == 0 {
      return "\(folder)/openssl"
    }
    return "/usr/bin/openssl"
  }()
}

/// A protocol that records how its connection went (for either end).
final class Recorder: Protocol {
  var received: [UInt8] = []
  var lostReason: CloseReason?
  var made = false
  /// Writes every received byte back.
  var echoes = false
  /// When set, received bytes are checked against ``ChunkedStream`` here instead of kept in ``received``.
  var checker: StreamChecker?
  var onMade: (Recorder) -> Void = { _ in }
  var onData: (Recorder) -> Void = { _ in }
  var onLost: (Recorder) -> Void = { _ in }

  override func connectionMade() {
    made = true
    onMade(self)
  }

  override func dataReceived(_ data: RawSpan) {
    if checker != nil {
      checker!.check(data)
    } else {
      data.withUnsafeBytes { received.append(contentsOf: $0) }
    }
    if echoes { transport.write(data) }
    onData(self)
  }

  override func connectionLost(_ reason: CloseReason) {
    lostReason = reason
    onLost(self)
  }
}

/// A server factory that configures each ``Recorder`` it builds and keeps them.
final class RecorderFactory: Factory {
  var configure: (Recorder) -> Void = { _ in }
  var built: [Recorder] = []

  init() { super.init(Recorder.self) }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let recorder = Recorder()
    configure(recorder)
    built.append(recorder)
    return recorder
  }
}

/// A client factory that configures each ``Recorder`` it builds and records failures.
final class RecorderClientFactory: ClientFactory {
  var configure: (Recorder) -> Void = { _ in }
  var built: [Recorder] = []
  var failed: [CloseReason] = []
  var onFailure: (CloseReason) -> Void = { _ in }

  init() { super.init(Recorder.self) }

  override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let recorder = Recorder()
    configure(recorder)
    built.append(recorder)
    return recorder
  }

  override func clientConnectionFailed(_ connector: any Connector, reason: CloseReason) {
    failed.append(reason)
    onFailure(reason)
  }
}

extension CloseReason {
  /// The text of a `.tlsFailed` reason, nil for any other.
  var tlsText: String? {
    if case .tlsFailed(let text) = self { return text }
    return nil
  }
}

/// Runs `reactor` a pass at a time until `done()` holds, or fails the test after
/// `timeout` seconds. Unlike `run`, the reactor stays usable afterwards.
func runUntil(
  _ reactor: Reactor, timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation, _ done: () -> Bool
) {
  let deadline = reactor.now + timeout
  while !done() && reactor.now < deadline {
    let wake = reactor.callLater(0.05) {}
    reactor.iterate()
    wake.cancel()
  }
  #expect(done(), "condition not met after \(timeout) s", sourceLocation: sourceLocation)
}

/// The index of the first byte where `received` and `expected` differ (or where one ends), nil when equal.
/// For big buffers: an `#expect` on this prints a number, not megabytes.
func firstDifference(_ received: [UInt8], _ expected: [UInt8]) -> Int? {
  for index in 0..<min(received.count, expected.count) where received[index] != expected[index] { return index }
  return received.count == expected.count ? nil : min(received.count, expected.count)
}

/// A long deterministic byte stream, written in 64 KiB chunks and checked as it arrives,
/// so a test moves many MiB without holding them (memory other suites measure stays low).
enum ChunkedStream {
  static let chunkSize = 64 << 10
  private static let base = pattern(chunkSize + 251, seed: 11)

  /// Writes the stream's first `total` bytes to `transport`, a chunk at a time.
  static func write(_ total: Int, to transport: any Transport) {
    var index = 0
    while index * chunkSize < total {
      writeChunk(index, of: total, to: transport)
      index += 1
    }
  }

  /// Writes chunk `index` of the stream's first `total` bytes (for a producer writing a chunk at a time).
  static func writeChunk(_ index: Int, of total: Int, to transport: any Transport) {
    let start = index &* 131 % 251
    let length = min(chunkSize, total - index * chunkSize)
    base[start..<start + length].withUnsafeBytes { transport.write($0.bytes) }
  }

  /// The byte at `position` of the stream.
  static func byte(at position: Int) -> UInt8 { base[(position / chunkSize) &* 131 % 251 + position % chunkSize] }
}

/// Checks bytes against ``ChunkedStream`` as they arrive.
struct StreamChecker {
  /// Bytes seen so far.
  private(set) var count = 0
  /// The position of the first wrong byte, if any.
  private(set) var firstMismatch: Int?

  mutating func check(_ data: RawSpan) {
    data.withUnsafeBytes { bytes in
      for byte in bytes {
        if firstMismatch == nil && byte != ChunkedStream.byte(at: count) { firstMismatch = count }
        count += 1
      }
    }
  }
}
