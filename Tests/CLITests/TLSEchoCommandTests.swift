import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --tls-cert --tls-key` driven by a real TLS peer: Debian's `openssl s_client`,
/// verifying the server's certificate (made at test time) and its name.
@Suite("twine echo over TLS with openssl s_client")
struct TLSEchoCommandTests {
  /// A self-signed certificate for localhost and 127.0.0.1, made with `openssl req` in a
  /// fresh folder that goes away with this value.
  final class Certificate {
    let folder: String
    var certificate: String { folder + "/localhost.crt" }
    var key: String { folder + "/localhost.key" }

    init() throws {
      folder = FileManager.default.temporaryDirectory.appendingPathComponent("twine-cli-tls-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      let result = try ChildProcess.run(
        try findProgram("openssl"),
        [
          "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
          "-out", certificate, "-days", "2", "-subj", "/CN=localhost",
          "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
      guard result.termination == .exited(0) else { throw HarnessError("openssl req failed: \(result.stderr)") }
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }
  }

  /// `openssl s_client` to the server on `port`, trusting only `certificate` and checking
  /// the name `localhost`; -nocommands so no input line is taken as a command.
  func sClient(port: Int, certificate: String) throws -> ChildProcess {
    try ChildProcess(
      try findProgram("openssl"),
      [
        "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", certificate,
        "-verify_return_error", "-verify_hostname", "localhost", "-nocommands", "-brief",
      ], pipeStdin: true)
  }

  /// Sends `payload` through a verifying s_client, waits for all of it to come back, then
  /// closes s_client's input (it sends close_notify and exits). Returns what came back.
  func roundTrip(_ payload: [UInt8], port: Int, certificate: String) throws -> [UInt8] {
    let client = try sClient(port: port, certificate: certificate)
    defer { client.kill() }
    try client.writeToStdin(payload)
    let echoed = waitUntil(timeout: Timeouts.io) { client.stdout.count >= payload.count || !client.isRunning }
    client.closeStdin()
    let termination = client.waitForExit()
    #expect(echoed, "echo incomplete; s_client stderr: \(client.stderrText)")
    #expect(termination == .exited(0), "s_client: \(client.stderrText)")
    #expect(client.stderrText.contains("Verification: OK"), "\(client.stderrText)")
    return client.stdout
  }

  @Test("echo over TLS returns exactly what a verifying s_client sent, and its close_notify is a clean close")
  func sClientRoundTrip() throws {
    let certificate = try Certificate()
    let server = try TwineServer([
      "echo", "--port", "0", "--tls-cert", certificate.certificate, "--tls-key", certificate.key, "--log-level",
      "debug",
    ])
    defer { server.kill() }
    // ~700 kB of text lines (s_client passes lines through as they are).
    let payload = Array((0..<20_000).map { "line \($0) \(String(repeating: "x", count: $0 % 50))\n" }.joined().utf8)
    let echoed = try roundTrip(payload, port: server.port, certificate: certificate.certificate)
    #expect(echoed.count == payload.count)
    let same = echoed == payload  // compared here: a failing #expect would print every byte
    #expect(same)
    _ = waitUntil(timeout: Timeouts.io) { server.stderrText.contains("connection lost") }
    #expect(server.stderrText.contains("reason=connection closed by peer"), "stderr: \(server.stderrText)")
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0))
    #expect(server.stderrText.contains("accepted=1"), "stderr: \(server.stderrText)")
  }

  @Test("plaintext sent to the TLS echo port ends that connection only; the next TLS client is served")
  func plaintextDropped() throws {
    let certificate = try Certificate()
    let server = try TwineServer([
      "echo", "--port", "0", "--tls-cert", certificate.certificate, "--tls-key", certificate.key,
    ])
    defer { server.kill() }
    let plain = try TCPClient.connect(port: server.port)
    try plain.send("hello in plaintext\n")
    let ended = try plain.readToEnd()
    #expect(!String(decoding: ended.bytes, as: UTF8.self).contains("hello"), "plaintext must not be echoed")
    let echoed = try roundTrip(
      Array("after the plaintext\n".utf8), port: server.port, certificate: certificate.certificate)
    #expect(echoed == Array("after the plaintext\n".utf8))
    #expect(server.isRunning)
  }

  @Test("handshakes in progress are bounded by --max-connections: silent connects past it are closed at once")
  func silentHandshakesBounded() throws {
    let certificate = try Certificate()
    let server = try TwineServer([
      "echo", "--port", "0", "--max-connections", "10", "--tls-cert", certificate.certificate,
      "--tls-key", certificate.key,
    ])
    defer { server.kill() }
    let held = try (0..<10).map { _ in try TCPClient.connect(port: server.port) }
    pause(0.3)  // the server has accepted them: ten handshakes in progress
    for _ in 0..<20 {
      let extra = try TCPClient.connect(port: server.port)
      let ended = try extra.readToEnd(timeout: 5)  // throws if the server keeps it waiting
      #expect(ended.bytes.isEmpty)
    }
    for client in held { #expect(!client.isReadable(timeout: 0.01), "a handshake within the limit was cut") }
    for client in held { client.close() }
    pause(0.3)
    let echoed = try roundTrip(
      Array("after the silent ones\n".utf8), port: server.port, certificate: certificate.certificate)
    #expect(echoed == Array("after the silent ones\n".utf8))
  }

  @Test("a missing certificate file: exit 1 with a one-line message naming it")
  func missingCertificate() throws {
    let twine = try TwineExecutable.path()
    let result = try ChildProcess.run(
      twine, ["echo", "--port", "0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"])
    #expect(result.termination == .exited(1))
    #expect(result.stderr.hasPrefix("twine: TLS setup failed: cannot load the certificate /nonexistent/cert.pem"))
    #expect(result.stdout.isEmpty)
  }

  @Test("--tls-cert without --tls-key is a usage error")
  func certWithoutKey() throws {
    let result = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--port", "0", "--tls-cert", "c.pem"])
    #expect(result.termination != .exited(0))
    #expect(result.stderr.contains("--tls-cert and --tls-key go together"))
  }
}
