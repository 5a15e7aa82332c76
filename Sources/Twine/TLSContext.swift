import CLibeventOpenSSL

/// An OpenSSL `SSL_CTX` made from ``TLSOptions``: TLS 1.2 or newer, the certificate and
/// key loaded and checked against each other, the trusted CAs, the verification mode.
/// The reactor keeps one per distinct ``Key`` (see ``Reactor/tlsContext(for:)``); each
/// connection's `SSL` holds its own reference, so the context outlives its connections.
final class TLSContext {
  /// What makes two options need different contexts: the per-connection parts
  /// (server name, handshake timeout, unclean close) are left out.
  struct Key: Hashable {
    let role: TLSOptions.Role
    let certificateFile: String?
    let privateKeyFile: String?
    let privateKeyPassword: String?
    let extraCertificateChainFile: String?
    let trustedCAFile: String?
    let verifyPeer: Bool

    init(_ options: TLSOptions) {
      role = options.role
      certificateFile = options.certificateFile
      privateKeyFile = options.privateKeyFile
      privateKeyPassword = options.privateKeyPassword
      extraCertificateChainFile = options.extraCertificateChainFile
      trustedCAFile = options.trustedCAFile
      verifyPeer = options.verifyPeer
    }
  }

  private let context: OpaquePointer
  let role: TLSOptions.Role
  private let verifyPeer: Bool

  /// Loads what `options` name; throws ``TwineError/tls(_:)`` with OpenSSL's reason.
  init(_ options: TLSOptions) throws(TwineError) {
    ERR_clear_error()
    guard let made = SSL_CTX_new(options.role == .server ? TLS_server_method() : TLS_client_method()) else {
      throw .tls("SSL_CTX_new: \(OpenSSLError.drainQueue())")
    }
    context = made  // from here on a throw runs deinit, which frees it
    role = options.role
    verifyPeer = options.verifyPeer
    guard twine_SSL_CTX_set_min_proto_version(made, twine_TLS1_2_VERSION()) == 1 else {
      throw .tls("cannot require TLS 1.2: \(OpenSSLError.drainQueue())")
    }
    SSL_CTX_set_options(made, twine_SSL_OP_NO_RENEGOTIATION())
    // OpenSSL's default password callback reads a pass phrase from the terminal: a server
    // with an encrypted key would wait there forever. This one hands out only the pass
    // phrase of the options, and only while the key loads (the user data is nil otherwise).
    SSL_CTX_set_default_passwd_cb(made) { buffer, size, _, request in
      guard let buffer, let request else { return 0 }
      return Unmanaged<PassPhraseRequest>.fromOpaque(request).takeUnretainedValue().answer(buffer, size: Int(size))
    }
    try loadIdentity(options)
    try loadTrust(options)
  }

  deinit { SSL_CTX_free(context) }

  /// This side's certificate chain and key; a server must have both.
  private func loadIdentity(_ options: TLSOptions) throws(TwineError) {
    switch (options.certificateFile, options.privateKeyFile) {
    case (nil, nil):
      if options.role == .server { throw .tls("a TLS server needs a certificate file and a private key file") }
    case (let certificate?, let key?):
      guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
        throw .tls("cannot load the certificate \(certificate): \(OpenSSLError.drainQueue())")
      }
      if let chain = options.extraCertificateChainFile { try loadExtraChain(chain) }
      try loadPrivateKey(key, passPhrase: options.privateKeyPassword)
      guard SSL_CTX_check_private_key(context) == 1 else {
        throw .tls("the private key \(key) does not match the certificate \(certificate)")
      }
    default:
      throw .tls("a certificate file needs its private key file, and a key its certificate")
    }
  }

  /// Adds every PEM certificate in `path` to the chain sent after the certificate.
  private func loadExtraChain(_ path: String) throws(TwineError) {
    guard let bio = BIO_new_file(path, "r") else {
      throw .tls("cannot read the extra certificate chain \(path): \(OpenSSLError.drainQueue())")
    }
    defer { BIO_free(bio) }
    var added = 0
    while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) {
      defer { X509_free(certificate) }
      guard twine_SSL_CTX_add1_chain_cert(context, certificate) == 1 else {
        throw .tls("cannot add a certificate of \(path) to the chain: \(OpenSSLError.drainQueue())")
      }
      added += 1
    }
    ERR_clear_error()  // the loop ends on PEM's "no start line"
    guard added > 0 else { throw .tls("the extra certificate chain \(path) holds no PEM certificate") }
  }

  /// Loads the PEM key at `path`, decrypting it with `passPhrase` if it is encrypted.
  private func loadPrivateKey(_ path: String, passPhrase: String?) throws(TwineError) {
    let request = PassPhraseRequest(passPhrase)
    let loaded = withExtendedLifetime(request) {
      SSL_CTX_set_default_passwd_cb_userdata(context, Unmanaged.passUnretained(request).toOpaque())
      defer { SSL_CTX_set_default_passwd_cb_userdata(context, nil) }
      return SSL_CTX_use_PrivateKey_file(context, path, SSL_FILETYPE_PEM) == 1
    }
    guard !loaded else { return }
    let reason = OpenSSLError.drainQueue()
    guard request.asked else { throw .tls("cannot load the private key \(path): \(reason)") }
    if passPhrase == nil {
      throw .tls("cannot load the private key \(path): \(TLSOptions.encryptedKeyWithoutPassPhrase)")
    }
    if request.tooLong {
      throw .tls("cannot load the private key \(path): its pass phrase is longer than OpenSSL's \(request.room) bytes")
    }
    throw .tls("cannot load the private key \(path) with the pass phrase given (wrong pass phrase?): \(reason)")
  }

  /// The CAs that may sign the peer's certificate, and whether it is checked.
  private func loadTrust(_ options: TLSOptions) throws(TwineError) {
    if let file = options.trustedCAFile {
      guard SSL_CTX_load_verify_locations(context, file, nil) == 1 else {
        throw .tls("cannot load the trusted CAs \(file): \(OpenSSLError.drainQueue())")
      }
      // A server names the CAs it accepts in its certificate request.
      if options.role == .server, let names = SSL_load_client_CA_file(file) {
        SSL_CTX_set_client_CA_list(context, names)
      }
    } else if options.verifyPeer {
      guard SSL_CTX_set_default_verify_paths(context) == 1 else {
        throw .tls("cannot load the system's trusted CAs: \(OpenSSLError.drainQueue())")
      }
    }
    if options.role == .server {
      // Sessions resumed with a client certificate need an id context (any fixed bytes).
      _ = SSL_CTX_set_session_id_context(context, "twine", 5)
    }
    let mode =
      !options.verifyPeer
      ? SSL_VERIFY_NONE
      : options.role == .server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER
    SSL_CTX_set_verify(context, mode, nil)
  }

  /// A new `SSL` for one connection (the caller hands it to a bufferevent, which frees it).
  /// A client checks the server's certificate against `serverName` and sends it as SNI
  /// (no SNI for an IP address, which is checked against the certificate's IP entries).
  func makeSSL(serverName: String?, allowsUncleanClose: Bool) -> OpaquePointer? {
    guard let ssl = SSL_new(context) else { return nil }
    if allowsUncleanClose { SSL_set_options(ssl, twine_SSL_OP_IGNORE_UNEXPECTED_EOF()) }
    if role == .client, verifyPeer, serverName?.isEmpty ?? true {
      SSL_free(ssl)  // a verifying client with no name to check would check only the chain
      return nil
    }
    if role == .client, var name = serverName, !name.isEmpty {
      if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }  // [::1]
      let isAddress = NumericAddress(host: name, port: 0) != nil
      // A name SNI cannot carry (over 255 bytes) is not sent; its error must not stay on
      // this thread's OpenSSL queue, where the next connection's I/O would read it as its own.
      if !isAddress && twine_SSL_set_tlsext_host_name(ssl, name) != 1 { ERR_clear_error() }
      // OpenSSL 3 takes an IP literal here as an IP address to match.
      if verifyPeer && SSL_set1_host(ssl, name) != 1 {
        SSL_free(ssl)
        return nil
      }
    }
    return ssl
  }
}

/// What OpenSSL's password callback answers while one key loads: the pass phrase, if
/// any, and whether it was asked for (so an encrypted key is told from a broken one).
private final class PassPhraseRequest {
  private let passPhrase: [UInt8]?
  /// OpenSSL asked: the key is encrypted.
  private(set) var asked = false
  /// The pass phrase did not fit in OpenSSL's buffer.
  private(set) var tooLong = false
  /// The size of OpenSSL's buffer, once asked.
  private(set) var room = 0

  init(_ passPhrase: String?) { self.passPhrase = passPhrase.map { Array($0.utf8) } }

  /// Copies the pass phrase into `buffer`; its length, or 0 (none given) or -1 (too long) to fail the load.
  func answer(_ buffer: UnsafeMutablePointer<CChar>, size: Int) -> Int32 {
    asked = true
    room = size
    guard let passPhrase, !passPhrase.isEmpty else { return 0 }
    guard passPhrase.count <= size else {
      tooLong = true
      return -1
    }
    passPhrase.withUnsafeBytes {
      UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
    }
    return Int32(passPhrase.count)
  }
}

/// A context and the options a connection uses it with (its server name, handshake
/// timeout and unclean-close policy, which the shared context does not hold).
struct TLSSetup {
  let context: TLSContext
  let options: TLSOptions
}

/// OpenSSL's error codes as text.
enum OpenSSLError {
  /// The reason text of one packed error code (e.g. `certificate verify failed`).
  static func text(_ code: UInt) -> String {
    // OpenSSL 3 packs an errno with its top bit set (ERR_SYSTEM_FLAG): give the system's text.
    if code & 0x8000_0000 != 0 { return String(cString: strerror(Int32(truncatingIfNeeded: code & 0x7fff_ffff))) }
    if let reason = ERR_reason_error_string(code) { return String(cString: reason) }
    var buffer = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(code, &buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// This thread's queued OpenSSL errors as one line (emptying the queue).
  static func drainQueue() -> String {
    var texts: [String] = []
    while case let code = ERR_get_error(), code != 0 {
      let text = text(code)
      // "system lib" only says that the errno before it is the cause.
      if !texts.contains(text) && text != "system lib" { texts.append(text) }
    }
    return texts.isEmpty ? "unknown error" : texts.joined(separator: ": ")
  }
}
