import CLibevent

/// Buffered mode: a connection whose bytes must pass through libevent — rate-limited,
/// TLS, or a host's bufferevent — reads through the bufferevent's read callback
/// (`evbuffer_peek` → `dataReceived` per chain, borrowed → `evbuffer_drain`) and writes
/// only through it. Also the bufferevent's event callback (connect, EOF, errors, TLS's end).
extension TCPConnection {
  /// Set when `connect()` itself failed: the reason the attempt ends with, whatever libevent reports next.
  var connectFailure: CloseReason? {
    get { extras?.connectFailure }
    set { madeExtras.connectFailure = newValue }
  }

  /// The bufferevent read into its input: hand each chain up, borrowed.
  func bufferedReadable() {
    guard hasHandles, reader.isBuffered, output.bufferevent != nil else { return }
    enterCallback()
    deliverBufferedInput()
    if eofAfterInput && !hasBufferedInput {
      eofAfterInput = false
      run(life.peerFinished(queued: queued))
    }
    leaveCallback()
  }

  /// Hands each chain of the bufferevent's input to `dataReceived`, borrowed, while input is wanted.
  func deliverBufferedInput() {
    guard let bev = output.bufferevent else { return }
    let input = bufferevent_get_input(bev)!
    var chain = iovec()
    // The close path waits for the callback around this to end, so `bev` stays valid throughout
    // (`startTLS` may put a TLS filter in its place: its bytes come in the filter's callback).
    while life.wantsInput, let proto, output.bufferevent == bev,
      evbuffer_peek(input, -1, nil, &chain, 1) > 0, chain.iov_len > 0
    {
      let length = chain.iov_len
      counters.noteBytesIn(length)
      proto.dataReceived(UnsafeRawBufferPointer(start: chain.iov_base, count: length).bytes)
      evbuffer_drain(input, length)
    }
  }

  /// Bytes wait in the bufferevent's input (the protocol paused before they were delivered).
  var hasBufferedInput: Bool {
    guard reader.isBuffered, let bev = output.bufferevent else { return false }
    return evbuffer_get_length(bufferevent_get_input(bev)) > 0
  }

  /// The bufferevent's event callback: connected, timed out, end of stream, error.
  func event(_ what: Int16) {
    let code = twine_socket_error()  // read before anything else can change it
    let what = Int32(what)
    enterCallback()
    if what & BEV_EVENT_CONNECTED != 0 {
      if let tls { tlsHandshakeCompleted(tls) }
      connected()
    } else if life.phase == .connecting, let connectFailure {
      close(connectFailure)  // the connect failed at once; what libevent saw after is a consequence
    } else if what & BEV_EVENT_TIMEOUT != 0 {
      close(.timedOut)
    } else if let tls, what & (BEV_EVENT_ERROR | BEV_EVENT_EOF) != 0 {
      // libevent reports TLS's end (close_notify, an alert, a bad record) from inside its read
      // loop, before the read callback for what it decrypted just before: deliver that first.
      deliverBufferedInput()
      if what & BEV_EVENT_ERROR != 0 {
        close(tls.failure(socketError: code))
      } else if let reason = tls.reasonForEOF {
        close(reason)
      } else if hasBufferedInput {
        eofAfterInput = true  // the protocol paused: the end comes after the rest of its input
      } else {
        run(life.peerFinished(queued: queued))
      }
    } else if what & BEV_EVENT_ERROR != 0 {
      close(.fromSocketError(sendError != 0 ? sendError : code))
    } else if what & BEV_EVENT_EOF != 0 {
      run(life.peerFinished(queued: queued))
    }
    leaveCallback()
  }

  /// Moves the connection to buffered mode (making its bufferevent if needed): from
  /// now on every byte passes through libevent. False if the bufferevent cannot be made.
  @discardableResult
  func enterBufferedMode() -> Bool {
    guard !reader.isBuffered else { return true }
    if let stream = tlsStream { return moveTLSToBufferevent(stream) }
    guard hasHandles, output.bufferevent != nil || makeOutputQueue() != nil else { return false }
    reader.switchToBuffered()  // frees the read event, allowed inside its own callback
    if life.readingArmed { setReading(true) }
    return true
  }

  func setRateLimit(_ limit: RateLimit?) {
    guard !life.isClosed, enterBufferedMode() else { return }
    output.setRateLimit(limit)
  }

  func joinRateLimitGroup(_ group: RateLimitGroup) {
    guard !life.isClosed, enterBufferedMode(), let bev = output.bufferevent,
      let shared = reactor.rateLimitGroup(for: group)
    else { return }
    bufferevent_add_to_rate_limit_group(bev, shared)
  }
}
