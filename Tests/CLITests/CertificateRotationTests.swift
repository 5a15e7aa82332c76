import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Certificate rotation: SIGHUP (or `reload` on the control socket) loads the TLS files again
/// for new handshakes; open connections keep theirs; a bad pair is refused and the old one stays.
@Suite("twine certificate rotation")
struct CertificateRotationTests {
  /// Writes a self-signed certificate for localhost named `/CN=name` to `certificate` and its key to `key`.
  static func makeCertificate(name: String, certificate: String, key: String) throws {
    let result = try ChildProcess.run(
      try findProgram("openssl"),
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", certificate, "-days", "2", "-subj", "/CN=\(name)", "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ])
    guard result.termination == .exited(0) else { throw HarnessError("openssl req failed: \(result.stderr)") }
  }

  /// The subject line a verifying `openssl s_client` reports for the server on `port`
  /// (`Peer certificate: CN = …`), trusting only `trusted`.
  static func servedSubject(port: Int, trusted: String) throws -> String {
    let result = try ChildProcess.run(
      try findProgram("openssl"),
      [
        "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", trusted,
        "-verify_return_error", "-verify_hostname", "localhost", "-nocommands", "-brief",
      ], stdin: [])
    let line = result.stderr.split(separator: "\n").first { $0.hasPrefix("Peer certificate:") }
    return line.map(String.init) ?? "no certificate (\(result.stderr))"
  }

  /// Sends `command` to the control socket at `path` and returns its one-line answer (python3 AF_UNIX client).
  static func control(_ path: String, _ command: String) throws -> String {
    let script = """
      import socket, sys
      with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
          s.settimeout(20)
          s.connect(sys.argv[1])
          s.sendall(sys.argv[2].encode() + b"\\n")
          got = b""
          while not got.endswith(b"\\n"):
              part = s.recv(4096)
              if not part:
                  break
              got += part
          sys.stdout.write(got.decode())
      """
    let result = try ChildProcess.run(try findProgram("python3"), ["-c", script, path, command])
    return String(decoding: result.stdout, as: UTF8.self)
  }

  @Test("SIGHUP and `reload` rotate the served certificate; an open connection survives; a bad pair is refused")
  func rotation() throws {
    let folder = try TakeoverCommandTests.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let (certificate, key) = (folder + "/server.crt", folder + "/server.key")
    let (first, second, third) = (folder + "/first.crt", folder + "/second.crt", folder + "/third.crt")
    try Self.makeCertificate(name: "first", certificate: certificate, key: key)
    _ = try ChildProcess.run("/bin/cp", [certificate, first])
    let control = folder + "/control"
    let server = try TwineServer([
      "echo", "--port", "0", "--tls-cert", certificate, "--tls-key", key, "--control", control,
    ])
    defer { server.kill() }
    #expect(try Self.servedSubject(port: server.port, trusted: first) == "Peer certificate: CN = first")

    // A connection open across the rotations.
    let open = try ChildProcess(
      try findProgram("openssl"),
      [
        "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost", "-CAfile", first,
        "-verify_return_error", "-nocommands", "-brief",
      ], pipeStdin: true)
    defer { open.kill() }
    try open.writeToStdin(Array("before\n".utf8))
    #expect(waitUntil(timeout: Timeouts.io) { open.stdoutText == "before\n" }, "\(open.stderrText)")

    // Rotated in place (as certbot does), then SIGHUP: new handshakes get the new certificate.
    try Self.makeCertificate(name: "second", certificate: second, key: folder + "/second.key")
    #expect(rename(folder + "/second.key", key) == 0 && rename(second, certificate) == 0)
    _ = try ChildProcess.run("/bin/cp", [certificate, second])
    server.send(SIGHUP)
    #expect(
      waitUntil(timeout: Timeouts.io) { server.stderrText.contains("certificate reloaded") }, "\(server.stderrText)")
    #expect(try Self.servedSubject(port: server.port, trusted: second) == "Peer certificate: CN = second")

    // A bad pair (the third certificate with the second's key) is refused; the second stays in use.
    try Self.makeCertificate(name: "third", certificate: third, key: folder + "/third.key")
    #expect(rename(third, certificate) == 0)
    let answer = try Self.control(control, "reload")
    #expect(answer.hasPrefix("refused 127.0.0.1:\(server.port): TLS setup failed: "), "\(answer)")
    #expect(answer.contains("mismatch") || answer.contains("does not match"), "\(answer)")
    #expect(server.stderrText.contains("certificate reload refused"), "\(server.stderrText)")
    #expect(try Self.servedSubject(port: server.port, trusted: second) == "Peer certificate: CN = second")

    // The right key arrives: `reload` on the control socket takes the third.
    #expect(rename(folder + "/third.key", key) == 0)
    #expect(try Self.control(control, "reload") == "reloaded 127.0.0.1:\(server.port)\n")
    _ = try ChildProcess.run("/bin/cp", [certificate, third])
    #expect(try Self.servedSubject(port: server.port, trusted: third) == "Peer certificate: CN = third")

    // The connection made before every rotation still echoes.
    try open.writeToStdin(Array("after\n".utf8))
    #expect(waitUntil(timeout: Timeouts.io) { open.stdoutText == "before\nafter\n" }, "\(open.stderrText)")
    open.closeStdin()
    #expect(open.waitForExit() == .exited(0), "\(open.stderrText)")
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
  }
}
