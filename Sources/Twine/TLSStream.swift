import CLibevent
import CLibeventOpenSSL

/// The direct TLS layer of one accepted ``TCPConnection``: OpenSSL on the socket itself,
/// driven by the connection's own read event, as the plain path drives `recv`/`send`.
///
/// Owns, each freed once by ``free()`` (or handed to a bufferevent by ``handOver(base:fd:)``):
/// the `SSL` (on the socket with `SSL_set_fd`, read-ahead on, a 64 KiB read buffer,
/// `SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER`), the plaintext
/// OpenSSL has not taken yet (an evbuffer) and the write event, armed only while that
/// queue holds something (or the handshake or a read waits to write). The socket is the
/// connection's ``OutputQueue``'s.
///
/// Small writes made inside one of the connection's callbacks are kept (up to one record) and
/// leave together when the callback ends: a protocol writing a header and a body sends one record.
///
/// The rules it keeps: a read returns what one `SSL_read` decrypted; the connection reads
/// again only while OpenSSL holds read-ahead bytes (``hasPending``) — bytes still in the
/// socket wake level-triggered epoll again — and wakes itself when it stops early with
/// bytes inside OpenSSL, where epoll cannot see them. A write goes to `SSL_write` at once
/// when nothing is queued (one full-size record per 16 KiB); only what OpenSSL did not
/// take is queued, starting with the bytes of the record it holds, so the retry passes the
/// same bytes first.
final class TLSStream {
  /// The `SSL`, until ``free()`` or ``handOver(base:fd:)``.
  private var ssl: OpaquePointer?
  /// The plaintext OpenSSL has not taken, in order.
  private let queue: OpaquePointer
  /// `EV_WRITE | EV_PERSIST` on the socket, calling the connection back.
  private var writeEvent: OpaquePointer?
  private var writeArmed = false
  private let allowsUncleanClose: Bool
  /// The options the session was made with (a bufferevent that takes it over keeps them).
  let options: TLSOptions
  /// The peer's certificate is checked (a server asking for client certificates).
  private let verifyingPeer: Bool
  /// True until the handshake completes.
  private(set) var handshaking = true
  /// The last `SSL_read` wanted to write (a TLS 1.3 key update answer): read again when writable.
  var readWantsWrite = false
  /// The connection's write callback runs when the queue drains to this (its low-water mark while flow control watches).
  var drainMark = 0
  /// Ends a handshake that takes too long in all.
  private var deadline: (any ScheduledCall)?
  /// Small writes made inside one of the connection's callbacks, sent together (one record)
  /// when it ends: ``recordSize`` bytes, made on first use.
  private var kept: UnsafeMutableRawPointer?
  /// Bytes in ``kept``; only while the queue is empty (what is kept goes out before anything queued).
  private(set) var keptCount = 0

  /// OpenSSL's read buffer: with read-ahead one `read` takes up to this many bytes (four full records).
  private static let readBufferSize = 64 << 10
  /// The largest record's plaintext: a retried write passes at least this much (or all that is queued).
  static let recordSize = 16 << 10

  /// What one read ended with.
  enum ReadResult {
    /// This many plaintext bytes.
    case data(Int)
    /// Nothing more until the socket is readable (or, ``readWantsWrite``, writable).
    case wouldBlock
    /// The peer's end: close_notify, or an unclean end the options allow.
    case finished
    /// The connection must close with this reason (an alert, a bad record, an unclean end, a socket error).
    case failed(CloseReason)
  }

  /// What one handshake step ended with.
  enum HandshakeStep {
    case done
    case wouldBlock
    case failed(CloseReason)
  }

  /// A server session on accepted socket `fd`; the write event calls `writable(context)`.
  /// Nil (nothing kept, the socket untouched) if OpenSSL or libevent cannot make one.
  init?(
    accepting fd: Int32, _ setup: TLSSetup, base: OpaquePointer, context: UnsafeMutableRawPointer,
    writable: event_callback_fn
  ) {
    guard let ssl = setup.context.makeSSL(serverName: nil, allowsUncleanClose: setup.options.allowsUncleanClose)
    else { return nil }
    guard SSL_set_fd(ssl, fd) == 1, let queue = evbuffer_new() else {
      SSL_free(ssl)
      return nil
    }
    guard let event = event_new(base, fd, Int16(EV_WRITE | EV_PERSIST), writable, context) else {
      evbuffer_free(queue)
      SSL_free(ssl)
      return nil
    }
    SSL_set_accept_state(ssl)
    _ = twine_SSL_set_direct_write_modes(ssl)
    SSL_set_read_ahead(ssl, 1)
    SSL_set_default_read_buffer_len(ssl, Self.readBufferSize)
    self.ssl = ssl
    self.queue = queue
    self.writeEvent = event
    self.allowsUncleanClose = setup.options.allowsUncleanClose
    self.options = setup.options
    self.verifyingPeer = setup.options.verifyPeer
  }

  deinit {
    assert(ssl == nil, "TLSStream dropped without free()")
    free()
    evbuffer_free(queue)
  }

  // MARK: Handshake

  /// Runs the handshake as far as the socket allows; arms the write event if it must wait to write.
  func handshake() -> HandshakeStep {
    guard let ssl else { return .failed(.tlsFailed("connection error")) }
    ERR_clear_error()
    let result = SSL_do_handshake(ssl)
    if result == 1 {
      handshaking = false
      deadline?.cancel()
      deadline = nil
      armWrite(queued > 0)
      return .done
    }
    switch SSL_get_error(ssl, result) {
    case SSL_ERROR_WANT_READ:
      armWrite(false)
      return .wouldBlock
    case SSL_ERROR_WANT_WRITE:
      armWrite(true)
      return .wouldBlock
    default:
      return .failed(
        failure(socketError: twine_socket_error(), eofReason: "the connection closed during the handshake"))
    }
  }

  /// Calls `expired` if the handshake has not completed `seconds` from now (nil, zero or
  /// infinite: no deadline). A second call replaces the first.
  func armDeadline(_ seconds: Double?, on scheduler: any Scheduler, expired: @escaping () -> Void) {
    guard let seconds, seconds.isFinite, seconds > 0 else { return }
    deadline?.cancel()
    // Strong (no side table for a weak reference): ``free()``, ``finish(sendCloseNotify:)`` and the
    // handshake's end cancel it, which lets go of this closure.
    deadline = scheduler.callLater(seconds) {
      guard self.handshaking else { return }
      expired()
    }
  }

  // MARK: Reading

  /// OpenSSL holds bytes read from the socket and not yet returned (read-ahead): epoll cannot see them.
  var hasPending: Bool {
    guard let ssl else { return false }
    return SSL_has_pending(ssl) == 1
  }

  /// One `SSL_read` into `buffer`.
  func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
    guard let ssl else { return .wouldBlock }
    ERR_clear_error()
    let got = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
    if got > 0 { return .data(Int(got)) }
    let code = twine_socket_error()
    switch SSL_get_error(ssl, got) {
    case SSL_ERROR_WANT_READ:
      return .wouldBlock
    case SSL_ERROR_WANT_WRITE:
      readWantsWrite = true
      armWrite(true)
      return .wouldBlock
    case SSL_ERROR_ZERO_RETURN:
      return .finished  // close_notify (or, with SSL_OP_IGNORE_UNEXPECTED_EOF, an unclean end allowed)
    case SSL_ERROR_SYSCALL where code == 0 && ERR_peek_error() == 0:
      return uncleanEnd()  // OpenSSL 1.1's unclean end: a bare EOF
    case SSL_ERROR_SSL where twine_ERR_peek_unexpected_eof() != 0:
      ERR_clear_error()
      return uncleanEnd()  // OpenSSL 3's unclean end
    default:
      return .failed(failure(socketError: code, eofReason: "connection error"))
    }
  }

  /// The peer closed without close_notify: the end of the stream if the options allow it, a failure otherwise.
  private func uncleanEnd() -> ReadResult {
    if allowsUncleanClose { return .finished }
    return .failed(.tlsFailed("unexpected eof while reading (the peer closed without close_notify)"))
  }

  // MARK: Writing

  /// Plaintext not yet taken by OpenSSL: queued, or kept for the end of the callback.
  var queued: Int { evbuffer_get_length(queue) + keptCount }

  /// Plaintext queued for the write event (not counting what is kept).
  var queueLength: Int { evbuffer_get_length(queue) }

  /// Keeps `count` bytes to send with the others written in this callback, if they fit in one
  /// record with them; false (nothing kept) if they do not.
  func keep(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
    guard keptCount + count <= Self.recordSize else { return false }
    if kept == nil { kept = .allocate(byteCount: Self.recordSize, alignment: 16) }
    (kept! + keptCount).copyMemory(from: bytes, byteCount: count)
    keptCount += count
    return true
  }

  /// Sends what was kept (one record); what OpenSSL does not take is queued. Nil, or a failure.
  func sendKept() -> CloseReason? {
    guard keptCount > 0, let kept else { return nil }
    let count = keptCount
    keptCount = 0
    switch send(kept, count: count) {
    case .success(let taken):
      if taken < count && !enqueue(kept + taken, count: count - taken) { return .error(SocketError.from(code: ENOMEM)) }
      return nil
    case .failure(let box):
      return box.reason
    }
  }

  /// Hands `count` bytes at `bytes` to `SSL_write` (one record per call) until all are
  /// taken or the socket is full; returns how many were taken, or a failure.
  func send(_ bytes: UnsafeRawPointer, count: Int) -> Result<Int, CloseReasonBox> {
    guard let ssl else { return .success(0) }
    var taken = 0
    while taken < count {
      ERR_clear_error()
      let wrote = SSL_write(ssl, bytes + taken, Int32(clamping: count - taken))
      if wrote > 0 {
        taken += Int(wrote)
        continue
      }
      let code = twine_socket_error()
      switch SSL_get_error(ssl, wrote) {
      case SSL_ERROR_WANT_WRITE, SSL_ERROR_WANT_READ:
        return .success(taken)
      default:
        return .failure(CloseReasonBox(failure(socketError: code, eofReason: "connection error")))
      }
    }
    return .success(taken)
  }

  /// Queues `count` bytes (what OpenSSL did not take) and arms the write event; false if
  /// the queue cannot grow (the stream has lost bytes and must end).
  func enqueue(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
    guard evbuffer_add(queue, bytes, count) == 0 else { return false }
    armWrite(true)
    return true
  }

  /// Sends what is queued, in order, until it is all taken or the socket is full; disarms
  /// the write event once empty (unless a read waits to write). Nil, or a failure.
  func flush() -> CloseReason? {
    while case let length = evbuffer_get_length(queue), length > 0 {
      // The record OpenSSL may hold is at most recordSize bytes: pass at least that much, contiguous.
      let chunk = min(length, Self.recordSize)
      guard let start = evbuffer_pullup(queue, chunk) else { return .error(SocketError.from(code: ENOMEM)) }
      switch send(start, count: chunk) {
      case .success(let taken):
        evbuffer_drain(queue, taken)
        if taken < chunk { return nil }  // the socket is full: the write event stays armed
      case .failure(let box):
        return box.reason
      }
    }
    armWrite(readWantsWrite)
    return nil
  }

  /// Turns the write interest on or off (no syscall when it is already so).
  private func armWrite(_ on: Bool) {
    guard on != writeArmed, let writeEvent else { return }
    writeArmed = on
    _ = on ? event_add(writeEvent, nil) : event_del(writeEvent)
  }

  // MARK: The end

  /// Why the connection failed: OpenSSL's queued reasons and, for a certificate that did
  /// not verify, why; without any, the socket error `code`, or `eofReason` for a bare end.
  private func failure(socketError code: Int32, eofReason: String) -> CloseReason {
    var texts: [String] = []
    while case let error = ERR_get_error(), error != 0 {
      let text = OpenSSLError.text(error)
      if !texts.contains(text) && text != "system lib" { texts.append(text) }
    }
    if let ssl, verifyingPeer, case let verification = SSL_get_verify_result(ssl), verification != X509_V_OK,
      let why = X509_verify_cert_error_string(verification)
    {
      texts.append("(\(String(cString: why)))")
    }
    if !texts.isEmpty { return .tlsFailed(texts.joined(separator: " ")) }
    if code != 0 { return .fromSocketError(code) }
    return .tlsFailed(handshaking ? "the connection closed during the handshake" : eofReason)
  }

  /// Before the connection closes the socket: for an orderly close after the handshake,
  /// one close_notify, handed to the kernel now (the peer's answer is not awaited).
  func finish(sendCloseNotify: Bool) {
    deadline?.cancel()
    deadline = nil
    guard sendCloseNotify, !handshaking, let ssl else { return }
    ERR_clear_error()
    SSL_shutdown(ssl)
    ERR_clear_error()
  }

  /// The one free: the write event, the `SSL` and what was queued or kept. Idempotent.
  func free() {
    deadline?.cancel()
    deadline = nil
    if let writeEvent { event_free(writeEvent) }
    writeEvent = nil
    writeArmed = false
    if let ssl { SSL_free(ssl) }
    ssl = nil
    kept?.deallocate()
    kept = nil
    keptCount = 0
    evbuffer_drain(queue, evbuffer_get_length(queue))  // discarded, as a closed connection's output is
  }

  /// Moves this session into an OpenSSL bufferevent on `fd` (already open, `BUFFEREVENT_SSL_OPEN`;
  /// it owns the `SSL` and the socket from now on): for a connection that becomes rate-limited,
  /// which libevent's token buckets throttle. Queued plaintext moves to its output and read-ahead
  /// bytes, decrypted, to its input. Nil (nothing changed) during the handshake or on failure.
  func handOver(base: OpaquePointer, fd: Int32) -> (bufferevent: OpaquePointer, ssl: OpaquePointer)? {
    guard !handshaking, let ssl,
      let bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_OPEN, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))
    else { return nil }
    // Bytes read ahead would wait inside OpenSSL where libevent never looks: decrypt them now.
    var scratch = [UInt8](repeating: 0, count: Self.recordSize)
    while SSL_has_pending(ssl) == 1 {
      ERR_clear_error()
      let got = scratch.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
      guard got > 0 else { break }
      evbuffer_add(bufferevent_get_input(bev), scratch, Int(got))
    }
    ERR_clear_error()
    // libevent 2.1 reads again only while SSL_pending (the current record) says so: with
    // read-ahead, whole records would wait in OpenSSL's buffer unseen. Off from now on.
    SSL_set_read_ahead(ssl, 0)
    // The record OpenSSL may hold must be retried from one contiguous piece.
    _ = evbuffer_pullup(queue, min(queued, Self.recordSize))
    evbuffer_add_buffer(bufferevent_get_output(bev), queue)
    if let kept, keptCount > 0 { evbuffer_add(bufferevent_get_output(bev), kept, keptCount) }
    keptCount = 0
    if let writeEvent { event_free(writeEvent) }
    writeEvent = nil
    writeArmed = false
    deadline?.cancel()
    deadline = nil
    self.ssl = nil
    return (bev, ssl)
  }
}

/// A ``CloseReason`` as an `Error` (a `Result`'s failure).
struct CloseReasonBox: Error {
  let reason: CloseReason
  init(_ reason: CloseReason) { self.reason = reason }
}
