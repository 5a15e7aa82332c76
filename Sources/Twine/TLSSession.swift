import CLibevent
import CLibeventOpenSSL

/// The TLS layer of one ``TCPConnection``: the `SSL` inside its OpenSSL bufferevent and,
/// for a connection upgraded by `startTLS`, the plain socket bufferevent underneath.
///
/// The connection owns the OpenSSL bufferevent, which owns the `SSL` and the bufferevent
/// underneath (`BEV_OPT_CLOSE_ON_FREE`). This object only uses them, and ``finish(sendCloseNotify:)``
/// runs before the connection frees them.
///
/// Two shapes, both read and written through the connection's buffered mode:
/// - socket (`listenSSL`, `connectSSL`): OpenSSL reads and writes the socket itself;
/// - filter (`startTLS`): OpenSSL reads from and writes to the plain bufferevent that
///   already held the socket, so plaintext queued before the upgrade leaves first and
///   bytes read ahead of it go into the handshake.
final class TLSSession {
  /// The OpenSSL bufferevent the connection reads and writes.
  let bufferevent: OpaquePointer
  private let ssl: OpaquePointer
  /// The plain bufferevent under a filter; nil for a socket session.
  private let underlying: OpaquePointer?
  /// Watches the plain bufferevent's output (filter only), see ``watchUnderlyingDrain()``.
  private var drainWatch: OpaquePointer?
  private let allowsUncleanClose: Bool
  /// The peer's certificate is checked (a client verifying, or a server asking for client certificates).
  private let verifyingPeer: Bool
  /// True until the handshake completes.
  private(set) var handshaking = true
  /// Ends a handshake that takes too long in all (libevent's timeouts restart on every byte).
  private var deadline: (any ScheduledCall)?

  private init(bufferevent: OpaquePointer, ssl: OpaquePointer, underlying: OpaquePointer?, options: TLSOptions) {
    self.bufferevent = bufferevent
    self.ssl = ssl
    self.underlying = underlying
    self.allowsUncleanClose = options.allowsUncleanClose
    self.verifyingPeer = options.verifyPeer
    // A filter reports the plain bufferevent's EOF as an error without any reason unless
    // dirty shutdowns are allowed: let it arrive as EOF, and `reasonForEOF` decides. (A
    // socket session keeps the default: with OpenSSL 3 its EOF without close_notify is an
    // OpenSSL error with a reason, and SSL_ERROR_SYSCALL is a real socket error, which
    // libevent would otherwise also turn into EOF.)
    if underlying != nil { bufferevent_openssl_set_allow_dirty_shutdown(bufferevent, 1) }
  }

  /// A server session on accepted socket `fd`; its handshake starts at once and must
  /// finish within the options' handshake timeout. Nil (the socket still open) on failure.
  static func accepting(fd: Int32, _ setup: TLSSetup, base: OpaquePointer) -> TLSSession? {
    guard let ssl = setup.context.makeSSL(serverName: nil, allowsUncleanClose: setup.options.allowsUncleanClose),
      let bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, closeOnFree)
    else { return nil }  // libevent frees the SSL when it fails
    let session = TLSSession(bufferevent: bev, ssl: ssl, underlying: nil, options: setup.options)
    session.setTimeouts(setup.options.handshakeTimeout)
    return session
  }

  /// A client session with no socket yet: `bufferevent_socket_connect` gives it one, and
  /// the handshake follows the connect. The connector sets the timeouts.
  static func connecting(_ setup: TLSSetup, serverName: String, base: OpaquePointer, fd: Int32) -> TLSSession? {
    let name = setup.options.serverName ?? serverName
    guard let ssl = setup.context.makeSSL(serverName: name, allowsUncleanClose: setup.options.allowsUncleanClose),
      let bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, closeOnFree)
    else { return nil }
    return TLSSession(bufferevent: bev, ssl: ssl, underlying: nil, options: setup.options)
  }

  /// A filter over `plain` (`startTLS`): from now on `plain` belongs to the returned
  /// session's bufferevent. Nil, with `plain` untouched, on failure.
  static func filter(
    over plain: OpaquePointer, _ setup: TLSSetup, serverName: String?, base: OpaquePointer
  ) -> TLSSession? {
    let server = setup.context.role == .server
    let name = setup.options.serverName ?? serverName
    guard let ssl = setup.context.makeSSL(serverName: name, allowsUncleanClose: setup.options.allowsUncleanClose),
      let bev = bufferevent_openssl_filter_new(
        base, plain, ssl, server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, closeOnFree)
    else { return nil }
    let session = TLSSession(bufferevent: bev, ssl: ssl, underlying: plain, options: setup.options)
    session.setTimeouts(setup.options.handshakeTimeout)
    session.watchUnderlyingDrain()
    // The filter starts its handshake only from the plain bufferevent's callbacks. Run them
    // once from the loop: a client sends its hello, and bytes already read (a hello that
    // came right behind the plaintext) are not left waiting for more to arrive.
    bufferevent_trigger(
      plain, Int16(EV_READ | EV_WRITE),
      Int32(BEV_TRIG_DEFER_CALLBACKS.rawValue | BEV_TRIG_IGNORE_WATERMARKS.rawValue))
    return session
  }

  /// A socket session over `ssl` whose handshake is done, inside `bufferevent` (a direct
  /// connection moved onto a bufferevent for a rate limit, see ``TLSStream/handOver(base:fd:)``).
  static func opened(bufferevent: OpaquePointer, ssl: OpaquePointer, options: TLSOptions) -> TLSSession {
    let session = TLSSession(bufferevent: bufferevent, ssl: ssl, underlying: nil, options: options)
    session.handshaking = false
    return session
  }

  private static let closeOnFree = Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)

  /// Read and write timeouts (on the socket's bufferevent); nil clears them.
  private func setTimeouts(_ seconds: Double?) {
    let target = underlying ?? bufferevent
    guard let seconds else {
      bufferevent_set_timeouts(target, nil, nil)
      return
    }
    let whole = seconds.rounded(.down)
    var read = timeval(tv_sec: Int(whole), tv_usec: Int((seconds - whole) * 1_000_000))
    var write = read
    bufferevent_set_timeouts(target, &read, &write)
  }

  /// Calls `expired` if the handshake has not completed `seconds` from now (nil, zero or
  /// infinite: no deadline). A second call replaces the first.
  func armDeadline(_ seconds: Double?, on scheduler: any Scheduler, expired: @escaping () -> Void) {
    guard let seconds, seconds.isFinite, seconds > 0 else { return }
    deadline?.cancel()
    deadline = scheduler.callLater(seconds) { [weak self] in
      guard let self, self.handshaking else { return }
      expired()
    }
  }

  /// The handshake completed: the handshake timeout and deadline no longer apply.
  func handshakeCompleted() {
    deadline?.cancel()
    deadline = nil
    guard handshaking else { return }
    handshaking = false
    setTimeouts(nil)
  }

  /// Ciphertext a filter has handed to the plain bufferevent that is not in the kernel yet.
  var queuedBelow: Int {
    guard let underlying else { return 0 }
    return evbuffer_get_length(bufferevent_get_output(underlying))
  }

  /// A filter moves its output into the plain bufferevent at once, and nothing tells the
  /// connection when that drains. This wakes the connection's write callback (from the
  /// loop) each time it empties, so a flush (`loseConnection`) or a flow-control pause can end.
  private func watchUnderlyingDrain() {
    guard let underlying else { return }
    drainWatch = evbuffer_add_cb(
      bufferevent_get_output(underlying),
      { buffer, info, filter in
        guard let info, info.pointee.n_deleted > 0, evbuffer_get_length(buffer) == 0 else { return }
        bufferevent_trigger(OpaquePointer(filter), Int16(EV_WRITE), Int32(BEV_TRIG_DEFER_CALLBACKS.rawValue))
      }, UnsafeMutableRawPointer(bufferevent))
  }

  /// Why the connection failed, from the errors libevent kept for this bufferevent:
  /// OpenSSL's reasons and, for a certificate that did not verify, why. Without any,
  /// the socket error `code` (a reset, a refused connect) decides.
  func failure(socketError code: Int32) -> CloseReason {
    var texts: [String] = []
    while case let error = bufferevent_get_openssl_error(bufferevent), error != 0 {
      // libevent also stores SSL_get_error's result (SSL_ERROR_SSL, SSL_ERROR_SYSCALL): no library, no text.
      guard ERR_GET_LIB(error) != 0 else { continue }
      let text = OpenSSLError.text(error)
      if !texts.contains(text) { texts.append(text) }
    }
    // With verification off OpenSSL still checks and keeps the result: report it only when it counted.
    let verification = SSL_get_verify_result(ssl)
    if verifyingPeer, verification != X509_V_OK, let why = X509_verify_cert_error_string(verification) {
      texts.append("(\(String(cString: why)))")
    }
    if !texts.isEmpty { return .tlsFailed(texts.joined(separator: " ")) }
    if code != 0 { return .fromSocketError(code) }
    return .tlsFailed(handshaking ? "the connection closed during the handshake" : "connection error")
  }

  /// The reason an end of stream closes with when it is not a clean close: the peer
  /// closed without close_notify (nil when it sent one, or when unclean closes are allowed).
  var reasonForEOF: CloseReason? {
    if handshaking { return .tlsFailed("the connection closed during the handshake") }
    if allowsUncleanClose || twine_SSL_received_shutdown(ssl) != 0 { return nil }
    return .tlsFailed("unexpected eof while reading (the peer closed without close_notify)")
  }

  /// libevent stops writing once the peer's close_notify is read; what is still queued
  /// must still go out (the connection flushes before it closes).
  func resumeWritingAfterEOF() {
    bufferevent_enable(bufferevent, Int16(EV_WRITE))
  }

  /// Before the connection frees the bufferevent: stop watching it and, for an orderly
  /// close after the handshake, send close_notify (best effort: one alert, handed to the
  /// kernel now, the peer's answer not awaited).
  func finish(sendCloseNotify: Bool) {
    deadline?.cancel()
    deadline = nil
    if let drainWatch, let underlying {
      evbuffer_remove_cb_entry(bufferevent_get_output(underlying), drainWatch)
      self.drainWatch = nil
    }
    guard sendCloseNotify && !handshaking else { return }
    ERR_clear_error()
    SSL_shutdown(ssl)
    ERR_clear_error()
    // A filter's alert lands in the plain bufferevent's output: write it out. (libevent
    // freezes the start of a socket bufferevent's output; it thaws it for its own writes too.)
    if let underlying {
      let output = bufferevent_get_output(underlying)
      let fd = bufferevent_getfd(underlying)
      evbuffer_unfreeze(output, 1)
      while evbuffer_get_length(output) > 0 && evbuffer_write(output, fd) > 0 {}
      evbuffer_freeze(output, 1)
    }
  }
}
