/// Certificate rotation: a TLS port loads a new certificate and key for the handshakes
/// to come; open connections keep the context they handshook with.
extension ListeningPort {
  /// True for a port that speaks TLS (``Reactor/listenSSL(_:factory:tls:backlog:interface:)``).
  public var usesTLS: Bool { tls != nil }

  /// Loads the certificate chain and key (and trusted CAs) again — from `options`, or by
  /// default from the files this port already uses, which is how certificates are rotated
  /// in place (certbot, cert-manager) — and uses them for every handshake from now on.
  /// Connections already open, or handshaking, keep the old ones.
  ///
  /// All or nothing: a missing file, a key that does not match its certificate or a
  /// wrong pass phrase throws ``TwineError/tls(_:)`` and the port keeps its current
  /// certificate. A port without TLS throws too. Later `startTLS` calls with the same
  /// options use the new files as well.
  public func reloadCertificate(_ options: TLSOptions? = nil) throws(TwineError) {
    guard let current = tls else { throw .tls("\(address) does not speak TLS: nothing to reload") }
    let options = options ?? current.options
    guard options.role == .server else { throw .tls("reloadCertificate needs server options (TLSOptions.server)") }
    let context = try TLSContext(options)
    tls = TLSSetup(context: context, options: options)
    reactor?.tlsContexts[TLSContext.Key(options)] = context
  }
}

extension Reactor {
  /// Reloads every listening TLS port's certificate and key from its files
  /// (``ListeningPort/reloadCertificate(_:)``), e.g. on SIGHUP. Returns each TLS port
  /// with nil, or the error that made it keep its old certificate.
  public func reloadCertificates() -> [(port: ListeningPort, error: TwineError?)] {
    ports.values.filter(\.usesTLS).sorted { $0.address.description < $1.address.description }.map { port in
      do throws(TwineError) {
        try port.reloadCertificate()
        return (port, nil)
      } catch {
        return (port, error)
      }
    }
  }
}
