import Foundation
import Glibc
import Twine

/// A self-signed certificate for localhost, made once per run with the `openssl` CLI in a
/// temporary folder (nothing secret is committed).
enum AsyncCertificates {
  static let folder: String = {
    let folder = "/tmp/twine-async-tls-\(getpid())"
    mkdir(folder, 0o700)
    let status = run([
      "/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", "\(folder)/localhost.key", "-out", "\(folder)/localhost.crt", "-days", "2", "-subj",
      "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ])
    precondition(status == 0, "openssl req failed (status \(status))")
    atexit { try? FileManager.default.removeItem(atPath: AsyncCertificates.folder) }
    return folder
  }()

  static func server() -> TLSOptions {
    .server(certificateFile: "\(folder)/localhost.crt", privateKeyFile: "\(folder)/localhost.key")
  }

  static func trustingClient() -> TLSOptions { .client(trustedCAFile: "\(folder)/localhost.crt") }

  private static func run(_ arguments: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for arg in argv { free(arg) } }
    var child: pid_t = 0
    guard posix_spawn(&child, arguments[0], &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    return status
  }
}
