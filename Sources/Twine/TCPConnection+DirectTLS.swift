import CLibevent
import CLibeventOpenSSL

/// The direct TLS path: a connection accepted on a TLS port drives OpenSSL itself
/// (``TLSStream``) on its own read event, as the plain path drives `recv` and `send`.
///
/// Read: the handshake, then `SSL_read` into the reactor's shared buffer — again while
/// OpenSSL holds read-ahead bytes and the buffer has room for a record — handed to
/// `dataReceived` borrowed; the socket is read once per wake-up (level-triggered epoll
/// calls again while it has more), and a connection that stops with bytes inside OpenSSL
/// (its budget spent, or paused and resumed) wakes itself, so no record waits unseen.
/// Write: `SSL_write` at once when nothing is queued (small writes inside the connection's own
/// callback wait for its end and leave together, one record); only what OpenSSL did not take
/// is queued, and the write event is armed only while something is. Everything else — flow
/// control, the hard limit, counters, the one close path — is the plain connection's.
///
/// Connections that need libevent stay on OpenSSL bufferevents: clients (`connectSSL`),
/// `startTLS`, and a direct connection that is rate-limited (it moves to a bufferevent,
/// see ``TLSStream/handOver(base:fd:)``): libevent's token buckets throttle only bufferevents.
extension TCPConnection {
  /// The direct TLS layer, for a connection accepted on a TLS port (nil once handed to a bufferevent).
  var tlsStream: TLSStream? { extras?.tlsStream }

  /// Serves accepted socket `fd` over TLS: the handshake runs on the connection's read
  /// event, the protocol starts after it.
  static func acceptTLS(
    reactor: Reactor, fd: Int32, peer: SocketAddress, factory: Factory, setup: TLSSetup, slot: HandshakeBudget
  ) {
    let connection = TCPConnection(reactor: reactor, fd: fd, bev: nil, factory: factory, peer: peer, connector: nil)
    let context = Unmanaged.passUnretained(connection).toOpaque()
    guard connection.reader.isReady,
      let stream = TLSStream(
        accepting: fd, setup, base: reactor.base, context: context,
        writable: { _, _, context in
          Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().tlsWritable()
        })
    else {
      reactor.logger.error("cannot start a TLS session; connection dropped", metadata: ["peer": "\(peer)"])
      slot.release()
      connection.close(.error(SocketError.from(code: ENOMEM)))
      return
    }
    connection.madeExtras.tlsStream = stream
    // Nagle off for the handshake too: the session tickets that follow the server's flight must not wait for an ACK.
    try? Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, true)
    connection.life.supportsHalfClose = false
    connection.madeExtras.handshakeSlot = slot
    // Strong, not weak: a weak reference would give the connection a side table, and every retain
    // of it a slower path. The cycle ends when the close path (or the handshake) cancels the deadline.
    stream.armDeadline(setup.options.handshakeTimeout, on: reactor) { connection.close(.timedOut) }
    guard connection.reader.arm(true) else {
      connection.close(.error(SocketError.from(code: ENOMEM)))
      return
    }
  }

  /// The socket is readable: the handshake, then decrypted input handed up, borrowed.
  func tlsReadable(_ stream: TLSStream) {
    enterCallback()
    defer { leaveCallback() }
    if stream.handshaking {
      handshakeStep(stream)
      guard !stream.handshaking, hasHandles else { return }
    }
    tlsRead(stream)
  }

  /// Reads while input is wanted, within one callback's budget.
  private func tlsRead(_ stream: TLSStream) {
    let buffer = reactor.readBuffer
    for _ in 0..<Self.readsPerCallback {
      guard life.wantsInput, let proto, tlsStream === stream else { return }
      var got = 0
      var end: TLSStream.ReadResult?
      // Fill the buffer from what OpenSSL holds; the socket itself is read once.
      repeat {
        switch stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[got...])) {
        case .data(let count): got += count
        case let other: end = other
        }
      } while end == nil && stream.hasPending && buffer.count - got >= TLSStream.recordSize
      if got > 0 {
        counters.noteBytesIn(got)
        proto.dataReceived(UnsafeRawBufferPointer(rebasing: buffer[..<got]).bytes)
      }
      switch end {
      case nil:
        if !stream.hasPending { return }  // drained: epoll calls again when more arrives
      case .wouldBlock?, .data?:
        return
      case .finished?:
        run(life.peerFinished(queued: queued))
        return
      case .failed(let reason)?:
        close(reason)
        return
      }
    }
    // The budget is spent with records inside OpenSSL, where epoll cannot see them: come back from the loop.
    if life.wantsInput && tlsStream === stream && stream.hasPending { reader.activate() }
  }

  /// One handshake step; when it completes the protocol is built and started.
  private func handshakeStep(_ stream: TLSStream) {
    switch stream.handshake() {
    case .wouldBlock:
      return
    case .failed(let reason):
      close(reason)
    case .done:
      releaseHandshakeSlot()
      connected()
      // Reading stays on for what follows the handshake, unless the protocol paused (or closed) in connectionMade.
      if hasHandles && !life.wantsInput { _ = reader.arm(false) }
    }
  }

  /// The socket is writable: the handshake or a read that waited to write goes on, the queue drains.
  func tlsWritable() {
    guard hasHandles, let stream = tlsStream else { return }
    enterCallback()
    defer { leaveCallback() }
    if stream.handshaking {
      handshakeStep(stream)
      return
    }
    if let failure = stream.flush() {
      close(failure)
      return
    }
    if stream.readWantsWrite {
      stream.readWantsWrite = false
      tlsRead(stream)
    }
    if stream.queued <= stream.drainMark {
      run(life.writeDrained(queued: queued, limits: writeBufferLimits))
    }
  }

  /// `write` on the direct TLS path: `SSL_write` now when nothing waits, else (or for the rest) the queue.
  func writeTLS(_ stream: TLSStream, _ bytes: UnsafeRawBufferPointer) {
    var offset = 0
    if !stream.handshaking && stream.queueLength == 0 {
      // Inside this connection's callback a small write waits for the others made there: one record.
      if life.callbackDepth > 0 && stream.keep(bytes.baseAddress!, count: bytes.count) { return }
      if let failure = stream.sendKept() { return close(failure) }
    }
    if !stream.handshaking && stream.queueLength == 0 {
      switch stream.send(bytes.baseAddress!, count: bytes.count) {
      case .success(let taken):
        if taken == bytes.count { return }
        offset = taken
      case .failure(let box):
        return close(box.reason)
      }
    }
    // A byte that cannot be queued would leave a hole in the stream: end it instead.
    guard stream.enqueue(bytes.baseAddress! + offset, count: bytes.count - offset) else {
      return close(.error(SocketError.from(code: ENOMEM)))
    }
    run(life.queueGrew(to: queued, limits: writeBufferLimits))
  }

  /// The outermost callback ends: what its small writes kept leaves now, as one record.
  func sendKeptTLS(_ stream: TLSStream) {
    if let failure = stream.sendKept() { close(failure) }
  }

  /// A direct TLS connection that must pass through libevent (a rate limit) moves onto an
  /// OpenSSL bufferevent that takes over its `SSL`, socket, queue and read-ahead bytes.
  /// False while the handshake runs or if libevent cannot make the bufferevent.
  func moveTLSToBufferevent(_ stream: TLSStream) -> Bool {
    guard hasHandles, let (bev, ssl) = stream.handOver(base: reactor.base, fd: fd) else { return false }
    extras?.tlsStream = nil
    output.adoptBufferevent(bev)
    reader.switchToBuffered()
    adopt(bev)
    tls = TLSSession.opened(bufferevent: bev, ssl: ssl, options: stream.options)
    if life.pausedByFlow { output.watchDrain(to: writeBufferLimits.lowWater) }
    if life.readingArmed { setReading(true) }  // delivers read-ahead bytes moved to its input
    return true
  }
}
