import Foundation
import Glibc
import LoopbackTestSupport
import Testing

@testable import Twine

/// An encrypted private key: never a prompt, the pass phrase from ``TLSOptions/privateKeyPassword``.
@Suite("TLS key pass phrase")
struct TLSKeyPassPhraseTests {
  /// The localhost test key, encrypted with AES-256 under `passPhrase`, in a file removed at exit.
  static let encryptedKey: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("twine-enc-\(UUID().uuidString).key").path
    let command =
      "'\(TestCertificates.openssl)' pkey -in '\(TestCertificates.localhost.key)' -aes256 -passout pass:\(passPhrase) -out '\(path)' 2>/dev/null"
    precondition(system(command) == 0, "openssl pkey failed")
    atexit { try? FileManager.default.removeItem(atPath: TLSKeyPassPhraseTests.encryptedKey) }
    return path
  }()
  static let passPhrase = "s3cret-phrase"

  static func options(password: String?) -> TLSOptions {
    var options = TLSOptions.server(
      certificateFile: TestCertificates.localhost.certificate, privateKeyFile: encryptedKey)
    options.privateKeyPassword = password
    return options
  }

  @Test("an encrypted key without a pass phrase fails at once with the documented reason (no prompt)")
  func noPassPhrase() {
    let error = #expect(throws: TwineError.self) { try TLSContext(Self.options(password: nil)) }
    guard case .tls(let reason)? = error else { return }
    #expect(reason == "cannot load the private key \(Self.encryptedKey): \(TLSOptions.encryptedKeyWithoutPassPhrase)")
  }

  @Test("the right pass phrase loads the key; a wrong one fails saying so")
  func withPassPhrase() throws {
    _ = try TLSContext(Self.options(password: Self.passPhrase))
    let error = #expect(throws: TwineError.self) { try TLSContext(Self.options(password: "not it")) }
    guard case .tls(let reason)? = error else { return }
    #expect(
      reason.hasPrefix(
        "cannot load the private key \(Self.encryptedKey) with the pass phrase given (wrong pass phrase?)"))
  }

  @Test("a pass phrase longer than OpenSSL's buffer fails saying so, without overrunning it")
  func tooLong() {
    let error = #expect(throws: TwineError.self) {
      try TLSContext(Self.options(password: String(repeating: "x", count: 5000)))
    }
    guard case .tls(let reason)? = error else { return }
    #expect(reason.contains("its pass phrase is longer than OpenSSL's"))
  }

  @Test("the options' description never shows the pass phrase")
  func descriptionRedacts() {
    let options = Self.options(password: Self.passPhrase)
    for text in ["\(options)", String(reflecting: options)] {
      #expect(!text.contains(Self.passPhrase), "\(text)")
      #expect(text.contains("privateKeyPassword: (set)"))
    }
  }
}
