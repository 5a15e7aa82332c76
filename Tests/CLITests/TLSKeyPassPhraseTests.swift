import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --tls-key` with an encrypted key: never a prompt on the terminal; the pass
/// phrase comes from `--tls-key-password-file`.
@Suite("twine echo with an encrypted TLS key")
struct TLSKeyPassPhraseTests {
  static let passPhrase = "correct horse battery"

  /// A self-signed certificate for localhost whose key is encrypted (AES-256) with ``passPhrase``.
  final class EncryptedCertificate {
    let folder: String
    var certificate: String { folder + "/localhost.crt" }
    var key: String { folder + "/localhost.key" }

    init() throws {
      folder =
        FileManager.default.temporaryDirectory.appendingPathComponent("twine-cli-tlskey-\(UUID().uuidString)")
        .path
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      let result = try ChildProcess.run(
        try findProgram("openssl"),
        [
          "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", key,
          "-passout", "pass:\(TLSKeyPassPhraseTests.passPhrase)", "-out", certificate, "-days", "2", "-subj",
          "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
      guard result.termination == .exited(0) else { throw HarnessError("openssl req failed: \(result.stderr)") }
      let pem = String(decoding: readWholeFile(key), as: UTF8.self)
      guard pem.contains("ENCRYPTED") else { throw HarnessError("openssl made a plain key: \(pem)") }
    }

    /// Writes `text` to a file in the folder; returns its path.
    func file(_ name: String, _ text: String) throws -> String {
      let path = folder + "/" + name
      try Data(text.utf8).write(to: URL(fileURLWithPath: path))
      return path
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }
  }

  /// Runs argv[2:] on a new pseudo-terminal as its controlling terminal (stdin, stdout and
  /// stderr on it, as from an interactive shell) for at most argv[1] seconds. Prints
  /// "exit N" or "HANG" (killed: it waited, e.g. for a pass phrase), then all it wrote.
  static let onTerminal = """
    import os, pty, select, signal, sys, time
    limit = float(sys.argv[1])
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[2], sys.argv[2:])
    out, status, end = b"", None, time.time() + limit
    while status is None and time.time() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                pass
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
    while select.select([fd], [], [], 0.1)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("HANG")
    else:
        print("exit", os.waitstatus_to_exitcode(status))
    sys.stdout.write(out.decode(errors="replace"))
    """

  @Test("no pass phrase, a terminal attached: no prompt, exit 1 at once with a message naming the option")
  func noPassPhraseOnTerminal() throws {
    let certificate = try EncryptedCertificate()
    let python = try findProgram("python3")
    let arguments = [
      "-c", Self.onTerminal, "10", try TwineExecutable.path(), "echo", "--port", "0", "--tls-cert",
      certificate.certificate, "--tls-key", certificate.key,
    ]
    let started = monotonicSeconds()
    let result = try ChildProcess.run(python, arguments, timeout: 30)
    let output = String(decoding: result.stdout, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
    #expect(result.termination == .exited(0), "python3: \(result.stderr)")
    #expect(output.hasPrefix("exit 1\n"), "a prompt shows as HANG: \(output)")
    #expect(
      output.contains(
        "twine: TLS setup failed: cannot load the private key \(certificate.key): the key is encrypted and no pass phrase was given; give its pass phrase with --tls-key-password-file\n"
      ), "\(output)")
    #expect(!output.contains("pass phrase:"), "OpenSSL's prompt ('Enter PEM pass phrase:') appeared: \(output)")
    #expect(!output.contains("listening on"))
    #expect(monotonicSeconds() - started < 10)
  }

  @Test(
    "with --tls-key-password-file the server decrypts the key and serves a verifying s_client",
    arguments: ["\(passPhrase)\n", "\(passPhrase)\r\nsecond line ignored\n", passPhrase])
  func passPhraseFromFile(content: String) throws {
    let certificate = try EncryptedCertificate()
    let file = try certificate.file("pass", content)
    let server = try TwineServer([
      "echo", "--port", "0", "--tls-cert", certificate.certificate, "--tls-key", certificate.key,
      "--tls-key-password-file", file,
    ])
    defer { server.kill() }
    let payload = Array("through an encrypted key\n".utf8)
    let echoed = try TLSEchoCommandTests().roundTrip(payload, port: server.port, certificate: certificate.certificate)
    #expect(echoed == payload)
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
  }

  @Test(
    "a wrong, empty or unreadable pass phrase file: exit 1 with one line saying which",
    arguments: [
      ("wrong", "wrong horse\n", "with the pass phrase given (wrong pass phrase?)"),
      ("empty", "\n", "has an empty first line"),
      ("missing", nil, "No such file or directory"),
    ] as [(String, String?, String)])
  func badPassPhraseFile(name: String, content: String?, message: String) throws {
    let certificate = try EncryptedCertificate()
    let file = try content.map { try certificate.file(name, $0) } ?? certificate.folder + "/" + name
    let result = try ChildProcess.run(
      try TwineExecutable.path(),
      [
        "echo", "--port", "0", "--tls-cert", certificate.certificate, "--tls-key", certificate.key,
        "--tls-key-password-file", file,
      ])
    #expect(result.termination == .exited(1))
    #expect(result.stderr.hasPrefix("twine: "), "stderr: \(result.stderr)")
    #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
    #expect(result.stderr.filter { $0 == "\n" }.count == 1, "one line: \(result.stderr)")
    #expect(!result.stderr.contains(Self.passPhrase))
    #expect(result.stdout.isEmpty)
  }

  @Test("--tls-key-password-file without --tls-key is a usage error")
  func fileWithoutKey() throws {
    let result = try ChildProcess.run(
      try TwineExecutable.path(), ["echo", "--port", "0", "--tls-key-password-file", "/tmp/x"])
    #expect(result.termination.isFailure)
    #expect(result.stderr.contains("--tls-key-password-file needs --tls-cert and --tls-key"), "\(result.stderr)")
    #expect(result.stderr.contains("Usage: twine"))
  }
}
