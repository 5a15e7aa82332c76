import CLibevent

/// One stream connection (TCP or UNIX): the ``Transport`` a protocol writes to.
///
/// A thin I/O shell: the rules of the connection's life are ``StreamLifecycle``'s, and
/// this type runs the ``StreamActions`` each event returns (``run(_:)``). Each C object
/// has one owner: socket and bufferevent the ``OutputQueue``, the read event the
/// ``ReadSource``, TLS the ``TLSSession``. ``finishClose(_:)`` is the one place the
/// handles are freed, the counters updated and `connectionLost` called.
///
/// The data path (BENCHMARKS.md says what each choice bought): a read event of our own
/// `recv`s into the reactor's shared buffer and lends it to `dataReceived` (libevent
/// 2.1's bufferevent reads 4 KiB per callback); `write` sends at once when nothing is
/// queued and queues only what the kernel did not take (one copy). Buffered mode (rate
/// limits, TLS, a host's bufferevent) goes through the bufferevent: TCPConnection+Buffered.swift.
final class TCPConnection: Transport, QueuedClosing {
  /// Unowned(unsafe): the reactor frees this object's handles in its shutdown, before it goes.
  unowned(unsafe) let reactor: Reactor
  /// The socket's number (owned by ``output``).
  let fd: Int32
  // Exclusivity unchecked: these are touched several times per read and write, only from the
  // loop's thread, and never while another access to them is open (each call takes them briefly).
  /// The rules: what this connection does next.
  @exclusivity(unchecked) var life: StreamLifecycle
  /// The socket and the bufferevent.
  @exclusivity(unchecked) var output: OutputQueue
  /// The read event (direct) or the bufferevent's read side (buffered).
  @exclusivity(unchecked) var reader: ReadSource
  /// True until ``finishClose(_:)`` frees the handles.
  private(set) var hasHandles = true
  /// The protocol, until the connection closes (that breaks the protocol ↔ transport cycle).
  private(set) var proto: Protocol?
  /// The factory, until the connection closes.
  private var factory: Factory?
  let counters: ConnectionCounters
  /// For client connections: the connector to tell about failure or loss, until the connection closes.
  private var connector: TCPConnector?
  /// A socket error seen by a direct send; libevent's own write meets it again and reports it.
  private(set) var sendError: Int32 = 0
  private var counted = false
  private(set) var peerAddress: SocketAddress
  /// TLS: the peer's close came while the protocol had paused with input undelivered.
  var eofAfterInput = false
  /// State only some connections need, made on first use (an idle plain connection carries one pointer).
  private(set) var extras: ConnectionExtras?
  var madeExtras: ConnectionExtras {
    if let extras { return extras }
    extras = ConnectionExtras()
    return extras!
  }
  /// The producer flow control pauses and resumes; with none, flow control pauses reading.
  private var producer: (any PushProducer)? { extras?.producer }
  /// The TLS layer, for a connection that speaks TLS (from the start or after `startTLS`).
  var tls: TLSSession? {
    get { extras?.tls }
    set {
      if newValue != nil || extras != nil { madeExtras.tls = newValue }
      life.supportsHalfClose = newValue == nil
    }
  }
  /// Links in the reactor's ``ConnectionList``.
  var listNext: TCPConnection?
  unowned(unsafe) var listPrev: TCPConnection?

  /// Reads one callback may do before yielding to other connections (each fills the read buffer).
  static let readsPerCallback = 8

  /// Wraps an accepted socket (server side, `bev` nil: `fd` is owned from now on) or a
  /// bufferevent that owns its socket (client side, TLS, adopted). `buffered` makes it
  /// read through `bev` (which must be given) from the start.
  init(
    reactor: Reactor, fd: Int32, bev: OpaquePointer?, factory: Factory, peer: SocketAddress,
    connector: TCPConnector?, buffered: Bool = false
  ) {
    self.reactor = reactor
    self.fd = fd
    self.factory = factory
    self.counters = factory.counters
    self.peerAddress = peer
    self.connector = connector
    self.life = StreamLifecycle()
    self.output = bev.map { OutputQueue(bufferevent: $0) } ?? OutputQueue(socket: StreamSocket(fd: fd))
    self.reader = ReadSource(buffered: ())
    reactor.connections.insert(self)
    if let bev { adopt(bev) }
    guard !(buffered && bev != nil) else { return }
    reader = ReadSource(
      base: reactor.base, fd: fd, context: Unmanaged.passUnretained(self).toOpaque(),
      callback: { _, _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().readable() })
  }

  deinit { assert(!hasHandles, "TCPConnection freed with its libevent handles alive") }

  /// Sets `bev`'s callbacks to this connection's (its read side is enabled only in buffered mode).
  func adopt(_ bev: OpaquePointer) {
    bufferevent_setcb(
      bev,
      { _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().bufferedReadable() },
      { _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().writeDrained() },
      { _, what, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().event(what) },
      Unmanaged.passUnretained(self).toOpaque())
  }

  /// Bytes queued (and, under a TLS filter, in the bufferevent below it), not yet handed to the kernel.
  var queued: Int {
    guard let extras else { return output.length }
    return output.length + (extras.tls?.queuedBelow ?? 0) + (extras.tlsStream?.queued ?? 0)
  }

  /// Starts the connection with its protocol: counts it, turns Nagle off, `connectionMade`, then reads.
  func start(with proto: Protocol) {
    guard reader.isReady else {
      reactor.logger.error("event_new failed; connection dropped", metadata: ["peer": "\(peerAddress)"])
      close(.error(SocketError.from(code: ENOMEM)))
      return
    }
    self.proto = proto
    counted = true
    counters.noteOpened()
    life.protocolHalfCloseable = proto is any HalfCloseable
    life.opened()
    if extras?.tlsStream == nil { try? Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, true) }  // TLS: at accept
    // `port`: the local address, i.e. the listener that accepted it (asked of the socket only at debug level).
    reactor.logger.debug("connection made", metadata: ["peer": "\(peerAddress)", "port": "\(host)"])
    enterCallback()
    proto.makeConnection(self)
    // Opened during a drain (a TLS handshake that finished, an adopted socket): told at once.
    if reactor.draining != nil && life.phase == .open { proto.connectionDraining() }
    leaveCallback()  // reading starts here: a protocol that greets and closes never reads
  }

  // MARK: Callbacks from libevent

  /// The socket is readable: read into the reactor's buffer and hand each read up, borrowed.
  private func readable() {
    guard hasHandles, !reader.isBuffered else { return }
    if let stream = extras?.tlsStream { return tlsReadable(stream) }
    enterCallback()
    let buffer = reactor.readBuffer
    for _ in 0..<Self.readsPerCallback {
      guard life.wantsInput, !reader.isBuffered, let proto else { break }
      do throws(SocketError) {
        guard let got = try Syscall.recv(fd, buffer) else { break }  // drained
        guard got > 0 else {
          run(life.peerFinished(queued: queued))
          break
        }
        counters.noteBytesIn(got)
        proto.dataReceived(UnsafeRawBufferPointer(rebasing: buffer[..<got]).bytes)
        if got < buffer.count { break }  // drained; level-triggered epoll calls again if more comes
      } catch {
        close(.fromSocketError(error.code))
        break
      }
    }
    leaveCallback()
  }

  /// The output queue drained to its low-water mark (0 unless flow control is watching it).
  func writeDrained() {
    enterCallback()
    run(life.writeDrained(queued: queued, limits: writeBufferLimits))
    leaveCallback()  // closes a closing connection whose queue is now empty
  }

  /// Starts a callback: a close inside waits for its end; others' closes it causes wait in the reactor's ``CloseQueue``.
  func enterCallback() {
    reactor.closes.enter()
    life.enterCallback()
  }

  /// Ends a callback of this connection (each starts with ``enterCallback()``).
  func leaveCallback() {
    if life.callbackDepth == 1, let stream = extras?.tlsStream, stream.keptCount > 0 { sendKeptTLS(stream) }
    run(life.leaveCallback(queued: queued))
    reactor.closes.leave()
  }

  /// Runs what the lifecycle decided, in ``StreamActions``' order.
  func run(_ actions: StreamActions) {
    guard !actions.isEmpty, hasHandles else { return }
    if let watch = actions.watchLowWater {
      output.watchDrain(to: watch ? writeBufferLimits.lowWater : nil)
      extras?.tlsStream?.drainMark = watch ? writeBufferLimits.lowWater : 0
    }
    if actions.stopReading { setReading(false) }
    if actions.pauseProducer { producer?.pauseProducing() }
    if actions.resumeProducer { producer?.resumeProducing() }
    if actions.startReading { setReading(true) }
    if actions.readConnectionLost, let halfCloseable = proto as? any HalfCloseable {
      halfCloseable.readConnectionLost()
    }
    if actions.flushAfterPeerEOF { tls?.resumeWritingAfterEOF() }
    if actions.shutWrite { try? Syscall.shutdown(fd, Int(SHUT_WR)) }
    if actions.overflowed {
      counters.noteOverflowAbort()
      reactor.logger.warning(
        "output past the hard limit; connection aborted", metadata: ["peer": "\(peerAddress)", "queued": "\(queued)"])
    }
    if let reason = actions.finishClose { reactor.closes.close(self, reason) }
  }

  /// Turns the read interest on or off (the TLS handshake reads by itself until it is done).
  func setReading(_ on: Bool) {
    guard hasHandles, tls?.handshaking != true, extras?.tlsStream?.handshaking != true else { return }
    // libevent could not register the interest (epoll_ctl ENOMEM): a connection that can
    // never read again ends now rather than hanging.
    guard reader.isBuffered else {
      if !reader.arm(on) { return close(.error(SocketError.from(code: ENOMEM))) }
      // Records read ahead wait inside OpenSSL, where epoll cannot see them: read them from the loop.
      if on, extras?.tlsStream?.hasPending == true { reader.activate() }
      return
    }
    guard let bev = output.bufferevent else { return }
    guard on else {
      bufferevent_disable(bev, Int16(EV_READ))
      return
    }
    guard bufferevent_enable(bev, Int16(EV_READ)) == 0 else { return close(.error(SocketError.from(code: ENOMEM))) }
    // Bytes read before a pause wait in the input: deliver them from the loop.
    if evbuffer_get_length(bufferevent_get_input(bev)) > 0 {
      bufferevent_trigger(bev, Int16(EV_READ), Int32(BEV_TRIG_DEFER_CALLBACKS.rawValue))
    }
  }

  /// The reactor while the connection is open; after the close an inert scheduler (the
  /// reactor may be gone by then), whose calls never run.
  var scheduler: any Scheduler { hasHandles ? reactor : InertScheduler.shared }

  /// A client connection completed, or a TLS server connection's handshake did: build the protocol and start.
  func connected() {
    guard life.phase == .connecting, let factory else { return }
    if let bev = output.bufferevent { bufferevent_set_timeouts(bev, nil, nil) }
    // A client learns its peer's address now; an accepted connection has it from accept.
    if connector != nil, let peer = SocketAddress.of(fd: fd, peer: true) { peerAddress = peer }
    guard let proto = factory.buildProtocol(peerAddress) else {
      counters.noteRefused()
      close(.aborted)
      return
    }
    guard life.phase == .connecting else { return }  // buildProtocol stopped the attempt
    connector?.connectionEstablished(self)
    start(with: proto)
  }

  /// For a client connection, the host it was asked to connect to (a name or an address).
  var connectedHost: String? { connector?.destination.host }

  // MARK: Transport

  func write(_ data: RawSpan) {
    guard life.acceptsWrites else { return }
    let count = data.byteCount
    guard count > 0 else { return }
    counters.noteBytesOut(count)
    data.withUnsafeBytes { bytes in
      if let stream = extras?.tlsStream { return writeTLS(stream, bytes) }
      var offset = 0
      if !reader.isBuffered && life.phase != .connecting && sendError == 0 && queued == 0 {
        do throws(SocketError) {
          offset = try Syscall.send(fd, bytes) ?? 0
          if offset == count { return }
        } catch {
          sendError = error.code  // queue it anyway: libevent's own write meets the error and reports it
        }
      }
      // A byte that cannot be queued would leave a hole in the stream: end it instead.
      guard output.bufferevent != nil || makeOutputQueue() != nil,
        output.enqueue(bytes.baseAddress! + offset, count: count - offset)
      else { return close(.error(SocketError.from(code: ENOMEM))) }
      run(life.queueGrew(to: queued, limits: writeBufferLimits))
    }
  }

  /// Makes the bufferevent that queues what the kernel did not take; it owns the socket from now on.
  func makeOutputQueue() -> OpaquePointer? {
    guard let made = output.makeBufferevent(base: reactor.base) else { return nil }
    adopt(made)
    return made
  }

  func loseConnection(reason: CloseReason) { run(life.loseConnection(reason, queued: queued)) }

  func abortConnection(reason: CloseReason) { close(reason) }

  func loseWriteConnection() { run(life.loseWriteConnection(queued: queued)) }

  func pauseProducing() { run(life.pause()) }

  func resumeProducing() { run(life.resume()) }

  func registerProducer(_ producer: any PushProducer) {
    guard !life.isClosed else { return }
    madeExtras.producer = producer
    run(life.producerRegistered())
  }

  func unregisterProducer() {
    extras?.producer = nil
    run(life.producerUnregistered())
  }

  var writeBufferLimits: WriteBufferLimits {
    get { extras?.limits ?? .default }
    set {
      madeExtras.limits = newValue
      run(life.limitsChanged())
    }
  }

  // MARK: The close path

  /// Ends the connection for `reason`, discarding queued output. Inside one of this
  /// connection's callbacks the free waits until the callback returns; elsewhere it happens now.
  func close(_ reason: CloseReason) { run(life.close(reason)) }

  /// The one place the handles are freed, the counters updated and `connectionLost` called.
  func finishQueuedClose(_ reason: CloseReason) { finishClose(reason) }

  private func finishClose(_ reason: CloseReason) {
    guard hasHandles else { return }
    withExtendedLifetime(self) {
      hasHandles = false
      if !counted && reason != .reactorShutdown, let slot = extras?.handshakeSlot {
        slot.noteFailed()
        counters.noteHandshakeFailed()
      }
      if reason == .timedOut { counters.noteTimedOut() }
      releaseHandshakeSlot()
      reader.free()
      // In buffered mode the bytes may need libevent's processing (TLS): no raw flush.
      if reason == .reactorShutdown && !reader.isBuffered { output.flushOnce(fd: fd) }
      let orderly = life.closedGracefully
      // Direct TLS: close_notify after an orderly flush, straight onto the socket, before the FIN.
      let stream = extras?.tlsStream
      stream?.finish(sendCloseNotify: orderly)
      // FIN, not RST, even with unread input.
      // (After the peer's own end of stream nothing unread is left: a plain close is a FIN.)
      if orderly || reason == .reactorShutdown, tls == nil, !life.peerFinished {
        StreamSocket.shutWriteAndDiscardInput(fd, scratch: reactor.readBuffer)
      }
      stream?.free()
      let tls = self.tls
      // close_notify only after an orderly flush (ours, or the peer's clean close).
      output.free { _ in tls?.finish(sendCloseNotify: orderly) }
      reactor.connections.remove(self)
      // Let go of everything but the closed socket's identity: a protocol that keeps its
      // transport must not keep its factory, connector or anything else alive through it.
      let proto = self.proto
      let connector = self.connector
      let producer = self.producer
      self.proto = nil
      self.connector = nil
      self.factory = nil
      extras?.producer = nil
      producer?.stopProducing()
      if counted {
        counters.noteClosed()
        reactor.logger.debug("connection lost", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        proto?.connectionClosed(reason)
        connector?.connectionLost(reason)
      } else {
        if tls != nil || stream != nil, connector == nil {
          reactor.logger.debug("TLS handshake failed", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        }
        connector?.connectionFailed(reason)
      }
    }
  }
}
