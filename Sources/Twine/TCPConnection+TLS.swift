import CLibevent

/// TLS on a TCP connection: accepted on a TLS port, or started on an open connection.
///
/// A connection accepted on a TLS port drives OpenSSL itself (TCPConnection+DirectTLS.swift).
/// A client's TLS connection, or one upgraded by `startTLS`, is a ``TCPConnection`` in
/// buffered mode whose bufferevent is an OpenSSL one; its ``TLSSession`` holds what only TLS needs (the handshake deadline,
/// close_notify, the end-of-stream rules). Everything else (flow control, counters, the
/// one close path) is the plain connection's. TLS has no half-close here: the lifecycle
/// is told so (``StreamLifecycle/supportsHalfClose``) when the session is set.
///
/// When `connectionMade` runs: after the handshake. A TLS port builds the protocol once
/// the handshake succeeds, so a peer that speaks plaintext, presents a bad certificate or
/// stalls (past ``TLSOptions/handshakeTimeout``) never reaches the factory: it is not
/// counted (neither accepted nor refused) and is logged at debug level. A client's
/// failed handshake ends in `clientConnectionFailed(.tlsFailed(…))`. (Twisted calls
/// `connectionMade` at TCP connect instead; here the protocol always starts on a
/// verified, encrypted connection.)
extension TCPConnection {
  /// Gives back the port's handshake slot (once): the handshake ended, or the connection did.
  func releaseHandshakeSlot() {
    extras?.handshakeSlot?.release()
    extras?.handshakeSlot = nil
  }

  /// Upgrades this connection to TLS (STARTTLS); see ``Transport/startTLS(_:)``.
  /// A second call, or a call on a connection that is not open, does nothing.
  func startTLS(_ options: TLSOptions) {
    guard life.phase == .open, tls == nil else { return }
    let setup: TLSSetup
    do throws(TwineError) {
      setup = TLSSetup(context: try reactor.tlsContext(for: options), options: options)
    } catch {
      loseConnection(reason: .tlsFailed(error.description))
      return
    }
    // The filter needs the socket's bufferevent underneath (made now if this connection
    // never queued): plaintext still queued there leaves before the handshake.
    guard enterBufferedMode(), let plain = output.bufferevent,
      let session = TLSSession.filter(
        over: plain, setup, serverName: connectedHost ?? peer.host, base: reactor.base)
    else {
      close(.tlsFailed("cannot start TLS: \(OpenSSLError.drainQueue())"))
      return
    }
    // The filter now owns the plain bufferevent and takes its place.
    output.replaceBufferevent(with: session.bufferevent)
    tls = session
    adopt(session.bufferevent)
    armHandshakeDeadline(options.handshakeTimeout)
    if life.pausedByFlow { output.watchDrain(to: writeBufferLimits.lowWater) }
  }

  /// The handshake finished: for `startTLS`, the protocol's reading resumes through the
  /// filter (or stays off, with the plain bufferevent below it, while paused).
  func tlsHandshakeCompleted(_ tls: TLSSession) {
    tls.handshakeCompleted()
    releaseHandshakeSlot()
    guard life.phase == .open || life.phase == .closing else { return }
    setReading(false)
    run(life.readingActions)  // the read interest as the lifecycle left it
  }

  /// Closes with `.timedOut` if the TLS handshake has not completed `seconds` from now.
  func armHandshakeDeadline(_ seconds: Double?) {
    tls?.armDeadline(seconds, on: reactor) { [weak self] in self?.close(.timedOut) }
  }
}
