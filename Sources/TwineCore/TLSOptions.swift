/// How one side of a TLS connection is set up: its certificate, whom it trusts, and
/// what it checks. A plain value (paths and flags); the reactor turns it into an
/// OpenSSL context when it is used, loading the files once per reactor and options.
///
/// ```swift
/// try reactor.listenSSL(8443, factory: f, tls: .server(certificateFile: "cert.pem", privateKeyFile: "key.pem"))
/// try reactor.connectSSL("example.org", 443, factory: c, tls: .client())   // system CAs, name checked
/// ```
///
/// Every context speaks TLS 1.2 or newer.
public struct TLSOptions: Sendable, Hashable {
  /// Which end of the handshake this side plays.
  public enum Role: Sendable, Hashable {
    /// Accepts handshakes; needs a certificate and its key.
    case server
    /// Starts handshakes.
    case client
  }

  /// Which end of the handshake this side plays.
  public var role: Role
  /// PEM file with this side's certificate (leaf first, then any intermediates). A
  /// server needs one; a client sends one only when the server asks.
  public var certificateFile: String?
  /// PEM file with the private key of ``certificateFile``.
  public var privateKeyFile: String?
  /// The pass phrase of an encrypted ``privateKeyFile``. Never asked for on a terminal:
  /// an encrypted key without it fails with ``encryptedKeyWithoutPassPhrase``.
  /// Left out of ``description``.
  public var privateKeyPassword: String? = nil
  /// PEM file of more certificates to send after ``certificateFile``'s (intermediates the
  /// peer needs to reach a CA it trusts; Twisted's `extraCertChain`). Nil: none.
  public var extraCertificateChainFile: String? = nil
  /// PEM file of CA certificates trusted to sign the peer's certificate; nil trusts
  /// the system's store. A self-signed certificate is trusted by naming it here.
  public var trustedCAFile: String?
  /// Client: check the server's certificate chain and name (on by default).
  /// Server: ask every client for a certificate and refuse the handshake without a valid one.
  public var verifyPeer: Bool
  /// Client: the name the server's certificate must carry, also sent as SNI; nil means
  /// the host given to `connectSSL` (for `startTLS`, the host the connection was made to).
  /// An IP address is checked against the certificate's IP addresses and sent as no SNI.
  public var serverName: String?
  /// Seconds the handshake may take; a peer that stalls longer is dropped (`.timedOut`).
  public var handshakeTimeout: Double
  /// Take a peer that closes without TLS's close_notify as a clean close (`.closedByPeer`).
  /// Off by default: such a close ends in `.tlsFailed`, since it may hide a truncation.
  public var allowsUncleanClose: Bool

  /// How the reason of a `TwineError.tls` ends when ``privateKeyFile`` is encrypted and
  /// ``privateKeyPassword`` is nil (a command line can match it to name its own option).
  public static let encryptedKeyWithoutPassPhrase = "the key is encrypted and no pass phrase was given"

  /// Makes options; ``server(certificateFile:privateKeyFile:clientCAFile:handshakeTimeout:)``
  /// and ``client(trustedCAFile:verifyPeer:serverName:certificateFile:privateKeyFile:handshakeTimeout:)`` read better.
  public init(
    role: Role, certificateFile: String? = nil, privateKeyFile: String? = nil, trustedCAFile: String? = nil,
    verifyPeer: Bool, serverName: String? = nil, handshakeTimeout: Double = 30, allowsUncleanClose: Bool = false
  ) {
    self.role = role
    self.certificateFile = certificateFile
    self.privateKeyFile = privateKeyFile
    self.trustedCAFile = trustedCAFile
    self.verifyPeer = verifyPeer
    self.serverName = serverName
    self.handshakeTimeout = handshakeTimeout
    self.allowsUncleanClose = allowsUncleanClose
  }

  /// A server with `certificateFile` and `privateKeyFile` (PEM). With `clientCAFile`,
  /// clients must present a certificate signed by a CA in that file.
  public static func server(
    certificateFile: String, privateKeyFile: String, clientCAFile: String? = nil, handshakeTimeout: Double = 30
  ) -> TLSOptions {
    TLSOptions(
      role: .server, certificateFile: certificateFile, privateKeyFile: privateKeyFile, trustedCAFile: clientCAFile,
      verifyPeer: clientCAFile != nil, handshakeTimeout: handshakeTimeout)
  }

  /// A client that trusts the system's CAs (or `trustedCAFile`) and checks the server's
  /// name, unless `verifyPeer` is false (which accepts any certificate: tests only).
  /// `certificateFile` and `privateKeyFile` are sent to a server that asks for a client certificate.
  public static func client(
    trustedCAFile: String? = nil, verifyPeer: Bool = true, serverName: String? = nil,
    certificateFile: String? = nil, privateKeyFile: String? = nil, handshakeTimeout: Double = 30
  ) -> TLSOptions {
    TLSOptions(
      role: .client, certificateFile: certificateFile, privateKeyFile: privateKeyFile, trustedCAFile: trustedCAFile,
      verifyPeer: verifyPeer, serverName: serverName, handshakeTimeout: handshakeTimeout)
  }
}

extension TLSOptions: CustomStringConvertible, CustomDebugStringConvertible {
  /// The options with the pass phrase left out (only whether there is one).
  public var description: String {
    var parts = ["role: \(role)", "verifyPeer: \(verifyPeer)"]
    if let certificateFile { parts.append("certificateFile: \(certificateFile)") }
    if let privateKeyFile { parts.append("privateKeyFile: \(privateKeyFile)") }
    if privateKeyPassword != nil { parts.append("privateKeyPassword: (set)") }
    if let trustedCAFile { parts.append("trustedCAFile: \(trustedCAFile)") }
    if let serverName { parts.append("serverName: \(serverName)") }
    return "TLSOptions(\(parts.joined(separator: ", ")))"
  }

  /// The same as ``description``: the pass phrase never appears.
  public var debugDescription: String { description }
}
