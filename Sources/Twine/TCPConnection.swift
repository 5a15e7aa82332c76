import CLibevent

/// One TCP connection: the ``Transport`` a protocol writes to. Owns its socket, the
/// read `event` on it, the `bufferevent` that queues output (made on the first write
/// the kernel does not take at once, `BEV_OPT_CLOSE_ON_FREE`), and its protocol.
///
/// Every way a connection ends goes through ``close(_:)``; ``finishClose(_:)``
/// is the one place the bufferevent, the read event and the socket are freed, the
/// counters updated and `connectionLost` called.
///
/// The data path (see BENCHMARKS.md for what each choice bought):
/// - Reading: libevent 2.1's bufferevent reads at most 4 KiB per callback and asks
///   `FIONREAD` first, so a 64 KiB message costs 16 callbacks and 32 syscalls, and
///   chains that split one message into several `dataReceived` calls. The bufferevent's
///   read side is therefore never enabled: a persistent `EV_READ` event of our own reads
///   with one `recv` into the reactor's shared read buffer and hands it to `dataReceived`
///   as a borrowed `RawSpan`: no copy, no allocation, one syscall per read.
/// - Writing: the bufferevent. `write` sends straight to the socket when nothing is
///   queued (no extra loop turn, no `epoll_ctl`), and queues in the bufferevent's output
///   evbuffer only what the kernel did not take (one copy). libevent flushes it, reports
///   write errors, and tells us when it drained (for `loseConnection`). The bufferevent
///   is made on the first such write: a connection whose writes all go straight out
///   (a greeting, most echoes) never allocates one.
/// - Buffered mode: a connection whose bytes must pass through libevent — rate-limited,
///   TLS, or a host's bufferevent — reads through the bufferevent's read callback
///   (`evbuffer_peek` → `dataReceived` per chain, borrowed → `evbuffer_drain`) and
///   writes only through it.
/// - TLS (`tls` set; see TCPConnection+TLS.swift): the bufferevent is an OpenSSL one, in
///   buffered mode. Reading waits for the handshake; the close path sends close_notify
///   after an orderly flush.
final class TCPConnection: Transport {
  enum State { case connecting, open, disconnecting, closed }

  /// Unowned(unsafe): the reactor frees this object's libevent handles in its shutdown, before it goes,
  /// and nothing reads `reactor` once the handles are gone (that also makes reads in the reactor's deinit legal).
  unowned(unsafe) let reactor: Reactor
  /// The output queue: nil until a write has to queue; it owns the socket once made.
  private var bev: OpaquePointer?
  /// The read event (direct mode only); nil in buffered mode and once the handles are freed.
  private var readEvent: OpaquePointer?
  /// Reads and writes go through the bufferevent (see the type's notes).
  private(set) var buffered = false
  /// True until ``finishClose(_:)`` frees the libevent handles.
  private var hasHandles = true
  /// This connection's own token-bucket configuration; libevent keeps the pointer, so it lives until the close.
  private var rateLimitConfig: OpaquePointer? {
    get { extras?.rateLimitConfig }
    set { if newValue != nil || extras != nil { madeExtras.rateLimitConfig = newValue } }
  }
  /// The socket: ours until a bufferevent takes it over (`BEV_OPT_CLOSE_ON_FREE`).
  let fd: Int32
  private(set) var state: State
  /// The protocol, until the connection closes (that breaks the protocol ↔ transport cycle).
  private var proto: Protocol?
  /// The factory, until the connection closes.
  private var factory: Factory?
  private let counters: ConnectionCounters
  /// For client connections: the connector to tell about failure or loss, until the connection closes.
  private var connector: TCPConnector?
  /// Callbacks for this connection on the stack; a close inside one waits for it to end.
  private var callbackDepth = 0
  private var pendingClose: CloseReason?
  /// Reading paused by the protocol (`pauseProducing`).
  private var paused = false
  /// Output passed the high-water mark and has not drained to the low one yet.
  private var flowPaused = false
  /// The producer flow control pauses and resumes; with none, flow control pauses reading.
  private var producer: (any PushProducer)? {
    get { extras?.producer }
    set { if newValue != nil || extras != nil { madeExtras.producer = newValue } }
  }
  var writeBufferLimits = WriteBufferLimits.default {
    didSet { if flowPaused, let bev { bufferevent_setwatermark(bev, Int16(EV_WRITE), writeBufferLimits.lowWater, 0) } }
  }
  /// The reason `loseConnection` gave, for when the flush completes.
  private var closingReason: CloseReason?
  /// The peer sent FIN; we may still be flushing to it.
  private var peerClosed = false
  /// `loseWriteConnection` was called: writes are refused; the write side shuts once the queue is empty.
  private var writeShutting = false
  /// Our write side is shut (`shutdown(SHUT_WR)` done).
  private var writeShut = false
  /// TLS: the peer's close came while the protocol had paused with input undelivered.
  private var eofAfterInput = false
  /// A socket error seen by a direct send; libevent's own write meets it again and reports it.
  private var sendError: Int32 = 0
  private var counted = false
  private(set) var peerAddress: SocketAddress
  /// The TLS layer, for a connection that speaks TLS (from the start or after `startTLS`).
  var tls: TLSSession? {
    get { extras?.tls }
    set { if newValue != nil || extras != nil { madeExtras.tls = newValue } }
  }
  /// Set when `connect()` itself failed: the reason the attempt ends with, whatever libevent reports next.
  var connectFailure: CloseReason? {
    get { extras?.connectFailure }
    set { if newValue != nil || extras != nil { madeExtras.connectFailure = newValue } }
  }
  /// Ends a TLS handshake that takes too long in all (libevent's timeouts restart on every byte).
  private var handshakeDeadline: (any ScheduledCall)? {
    get { extras?.handshakeDeadline }
    set { if newValue != nil || extras != nil { madeExtras.handshakeDeadline = newValue } }
  }

  /// State only some connections need, made on first use: an idle plain connection
  /// carries one pointer for all of it (it is most of what a connection costs at rest).
  private final class Extras {
    var rateLimitConfig: OpaquePointer?
    var producer: (any PushProducer)?
    var tls: TLSSession?
    var connectFailure: CloseReason?
    var handshakeDeadline: (any ScheduledCall)?
    var hostAddress: SocketAddress?
  }
  private var extras: Extras?
  private var madeExtras: Extras {
    if let extras { return extras }
    let made = Extras()
    extras = made
    return made
  }
  /// Links in the reactor's ``ConnectionList``.
  var listNext: TCPConnection?
  unowned(unsafe) var listPrev: TCPConnection?

  /// Reads one callback may do before yielding to other connections (each fills the read buffer).
  private static let readsPerCallback = 8

  /// Wraps an accepted socket (server side, `bev` nil) or a connecting bufferevent (client
  /// side). `buffered` makes it read through `bev` (which must be given) from the start.
  init(
    reactor: Reactor, fd: Int32, bev: OpaquePointer?, factory: Factory, peer: SocketAddress,
    connector: TCPConnector?, state: State, buffered: Bool = false
  ) {
    self.reactor = reactor
    self.fd = fd
    self.factory = factory
    self.counters = factory.counters
    self.peerAddress = peer
    self.connector = connector
    self.state = state
    self.buffered = buffered && bev != nil
    reactor.connections.insert(self)
    if let bev { adopt(bev) }
    guard !self.buffered else { return }
    let context = Unmanaged.passUnretained(self).toOpaque()
    readEvent = event_new(
      reactor.base, fd, Int16(EV_READ | EV_PERSIST),
      { _, _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().readable() }, context)
  }

  deinit { assert(bev == nil && readEvent == nil, "TCPConnection freed with its libevent handles alive") }

  /// Takes `bev` as the output queue (its read side is enabled only in buffered mode).
  private func adopt(_ bev: OpaquePointer) {
    self.bev = bev
    let context = Unmanaged.passUnretained(self).toOpaque()
    bufferevent_setcb(
      bev,
      { _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().bufferedReadable() },
      { _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().writeDrained() },
      { _, what, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().event(what) },
      context)
  }

  /// Bytes queued in the bufferevent (and, under a TLS filter, in the one below it), not yet handed to the kernel.
  private var queued: Int {
    guard let bev else { return 0 }
    return evbuffer_get_length(bufferevent_get_output(bev)) + (tls?.queuedBelow ?? 0)
  }

  /// Starts the connection with its protocol: counts it, turns Nagle off, `connectionMade`, then reads.
  func start(with proto: Protocol) {
    guard buffered || readEvent != nil else {
      reactor.logger.error("event_new failed; connection dropped", metadata: ["peer": "\(peerAddress)"])
      close(.error(SocketError.from(code: ENOMEM)))
      return
    }
    self.proto = proto
    counted = true
    counters.noteOpened()
    state = .open
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    reactor.logger.debug("connection made", metadata: ["peer": "\(peerAddress)"])
    callbackDepth += 1
    proto.makeConnection(self)
    leaveCallback()
    // Registered only now: a protocol that greets and closes in connectionMade (HelloHD)
    // never costs an epoll_ctl add and delete.
    startReadingIfWanted()
  }

  // MARK: Callbacks from libevent

  /// The socket is readable: read into the reactor's buffer and hand each read up, borrowed.
  private func readable() {
    guard readEvent != nil, !buffered else { return }
    callbackDepth += 1
    readAvailable()
    leaveCallback()
  }

  /// Reads into the reactor's buffer until the socket is drained (or this callback's
  /// share is used), handing each read to `dataReceived` as a borrowed view.
  private func readAvailable() {
    let buffer = reactor.readBuffer
    for _ in 0..<Self.readsPerCallback {
      guard wantsInput, !buffered, let proto else { return }
      let got = recv(fd, buffer.baseAddress, buffer.count, 0)
      if got > 0 {
        counters.noteBytesIn(got)
        proto.dataReceived(UnsafeRawBufferPointer(rebasing: buffer[..<got]).bytes)
        if got < buffer.count { return }  // drained; level-triggered epoll calls again if more comes
      } else if got == 0 {
        peerFinished()
        return
      } else {
        let code = twine_socket_error()
        if code == EINTR { continue }
        if code != EAGAIN && code != EWOULDBLOCK { close(.fromSocketError(code)) }
        return
      }
    }
  }

  /// Buffered mode: the bufferevent read into its input; hand each chain up, borrowed.
  private func bufferedReadable() {
    guard hasHandles, buffered, bev != nil else { return }
    callbackDepth += 1
    deliverBufferedInput()
    if eofAfterInput && !hasBufferedInput {
      eofAfterInput = false
      peerFinished()
    }
    leaveCallback()
  }

  /// Hands each chain of the bufferevent's input to `dataReceived`, borrowed, while input is wanted.
  private func deliverBufferedInput() {
    guard let bev else { return }
    let input = bufferevent_get_input(bev)!
    var chain = iovec()
    // The close path waits for the callback around this to end, so `bev` stays valid throughout
    // (`startTLS` may put a TLS filter in its place: its bytes come in the filter's callback).
    while wantsInput, let proto, self.bev == bev, evbuffer_peek(input, -1, nil, &chain, 1) > 0, chain.iov_len > 0 {
      let length = chain.iov_len
      counters.noteBytesIn(length)
      proto.dataReceived(UnsafeRawBufferPointer(start: chain.iov_base, count: length).bytes)
      evbuffer_drain(input, length)
    }
  }

  /// Buffered mode: bytes wait in the bufferevent's input (the protocol paused before they were delivered).
  private var hasBufferedInput: Bool {
    guard buffered, let bev else { return false }
    return evbuffer_get_length(bufferevent_get_input(bev)) > 0
  }

  /// The output queue drained to its low-water mark (0 unless flow control paused it).
  private func writeDrained() {
    callbackDepth += 1
    if flowPaused && queued <= writeBufferLimits.lowWater { resumeAfterDrain() }
    if writeShutting && !writeShut && state == .open && queued == 0 { shutWrite() }
    leaveCallback()  // closes a disconnecting connection whose queue is now empty
  }

  private func event(_ what: Int16) {
    let code = twine_socket_error()  // read before anything else can change it
    let what = Int32(what)
    callbackDepth += 1
    if what & BEV_EVENT_CONNECTED != 0 {
      if let tls { tlsHandshakeCompleted(tls) }
      connected()
    } else if state == .connecting, let connectFailure {
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
        peerFinished()
      }
    } else if what & BEV_EVENT_ERROR != 0 {
      close(.fromSocketError(sendError != 0 ? sendError : code))
    } else if what & BEV_EVENT_EOF != 0 {
      peerFinished()
    }
    leaveCallback()
  }

  /// The peer sent FIN. A ``HalfCloseable`` protocol hears `readConnectionLost` and may
  /// go on writing; otherwise flush what is queued (the peer may still read), then close.
  private func peerFinished() {
    peerClosed = true
    guard state == .open || state == .disconnecting else { return }
    stopReading()
    if writeShut {
      close(.closedByUs)  // both halves are done
    } else if state == .open, tls == nil, let halfCloseable = proto as? any HalfCloseable {
      halfCloseable.readConnectionLost()
    } else if queued == 0 {
      close(.closedByPeer)
    } else {
      state = .disconnecting
      tls?.resumeWritingAfterEOF()
    }
  }

  /// Shuts our write side now that nothing is queued; with the peer's side already done, closes.
  private func shutWrite() {
    writeShut = true
    shutdown(fd, Int32(SHUT_WR))
    if peerClosed { close(.closedByUs) }
  }

  private func stopReading() {
    guard tls?.handshaking != true else { return }  // the handshake reads; the protocol reads after it
    if buffered {
      if let bev { bufferevent_disable(bev, Int16(EV_READ)) }
    } else if let readEvent {
      event_del(readEvent)
    }
  }

  /// True while input should be read: open, not paused by the protocol, not held back by flow control.
  private var wantsInput: Bool { state == .open && !peerClosed && !paused && !(flowPaused && producer == nil) }

  /// Re-arms reading if it is wanted again.
  private func startReadingIfWanted() {
    guard wantsInput, hasHandles, tls?.handshaking != true else { return }
    if buffered, let bev {
      bufferevent_enable(bev, Int16(EV_READ))
      // Bytes read before a pause wait in the input: deliver them from the loop.
      if evbuffer_get_length(bufferevent_get_input(bev)) > 0 {
        bufferevent_trigger(bev, Int16(EV_READ), Int32(BEV_TRIG_DEFER_CALLBACKS.rawValue))
      }
    } else if let readEvent {
      event_add(readEvent, nil)
    }
  }

  // MARK: Buffered mode and rate limits

  /// Moves the connection to buffered mode (making its bufferevent if needed): from
  /// now on every byte passes through libevent. False if the bufferevent cannot be made.
  @discardableResult
  func enterBufferedMode() -> Bool {
    guard !buffered else { return true }
    guard hasHandles, bev != nil || makeOutputQueue() != nil else { return false }
    if let readEvent {
      event_free(readEvent)  // allowed inside its own callback; readAvailable checks `buffered`
      self.readEvent = nil
    }
    buffered = true
    startReadingIfWanted()
    return true
  }

  func setRateLimit(_ limit: RateLimit?) {
    guard state != .closed, enterBufferedMode(), let bev else { return }
    let old = rateLimitConfig
    rateLimitConfig = limit.flatMap(TokenBuckets.config)
    bufferevent_set_rate_limit(bev, rateLimitConfig)
    if let old { ev_token_bucket_cfg_free(old) }
  }

  func joinRateLimitGroup(_ group: RateLimitGroup) {
    guard state != .closed, enterBufferedMode(), let bev, let shared = reactor.rateLimitGroup(for: group) else {
      return
    }
    bufferevent_add_to_rate_limit_group(bev, shared)
  }

  // MARK: TLS hooks (TCPConnection+TLS.swift)

  /// The bufferevent reads and writes go through (nil in direct mode until a write queues).
  var currentBufferevent: OpaquePointer? { bev }

  /// For a client connection, the host it was asked to connect to (a name or an address).
  var connectedHost: String? { connector?.destination.host }

  /// `startTLS`: `session`'s filter, made over the current bufferevent (which it now
  /// owns), takes that bufferevent's place. Reading resumes after the handshake.
  func adoptTLSFilter(_ session: TLSSession, handshakeTimeout: Double?) {
    let filter = session.bufferevent
    // A rate limit set before the upgrade moves to the filter: the plain bufferevent
    // below must not keep a configuration this connection frees.
    if let rateLimitConfig, let plain = bev {
      bufferevent_set_rate_limit(plain, nil)
      bufferevent_set_rate_limit(filter, rateLimitConfig)
    }
    bev = filter
    tls = session
    adopt(filter)
    armHandshakeDeadline(handshakeTimeout)
    if flowPaused { bufferevent_setwatermark(filter, Int16(EV_WRITE), writeBufferLimits.lowWater, 0) }
  }

  /// The handshake finished: for `startTLS`, the protocol's reading resumes through the
  /// filter (or stays off, with the plain bufferevent below it, while paused).
  private func tlsHandshakeCompleted(_ tls: TLSSession) {
    tls.handshakeCompleted()
    handshakeDeadline?.cancel()
    handshakeDeadline = nil
    guard state == .open || state == .disconnecting else { return }
    stopReading()
    startReadingIfWanted()
  }

  /// Closes with `.timedOut` if the TLS handshake has not completed `seconds` from now.
  func armHandshakeDeadline(_ seconds: Double?) {
    guard let seconds, seconds.isFinite, seconds > 0 else { return }
    handshakeDeadline?.cancel()
    handshakeDeadline = reactor.callLater(seconds) { [weak self] in
      guard let self, self.tls?.handshaking == true else { return }
      self.close(.timedOut)
    }
  }

  // MARK: Flow control

  /// After output was queued: pause the producer (or reading) past the high-water mark,
  /// abort past the hard limit.
  private func checkQueue(_ bev: OpaquePointer) {
    let length = queued
    if length > writeBufferLimits.hardLimit {
      reactor.logger.warning(
        "output past the hard limit; connection aborted",
        metadata: ["peer": "\(peerAddress)", "queued": "\(length)"])
      close(.bufferOverflow)
    } else if length > writeBufferLimits.highWater && !flowPaused {
      flowPaused = true
      bufferevent_setwatermark(bev, Int16(EV_WRITE), writeBufferLimits.lowWater, 0)
      if let producer { producer.pauseProducing() } else { stopReading() }
    }
  }

  private func resumeAfterDrain() {
    flowPaused = false
    if let bev { bufferevent_setwatermark(bev, Int16(EV_WRITE), 0, 0) }
    guard state == .open || state == .disconnecting else { return }
    if let producer { producer.resumeProducing() } else { startReadingIfWanted() }
  }

  func registerProducer(_ producer: any PushProducer) {
    guard state != .closed else { return }
    self.producer = producer
    if flowPaused { producer.pauseProducing() }
    startReadingIfWanted()
  }

  func unregisterProducer() {
    producer = nil
    if flowPaused { stopReading() }
  }

  var scheduler: any Scheduler { reactor }

  /// A client connection completed, or a TLS server connection's handshake did: build the protocol and start.
  private func connected() {
    guard state == .connecting, let bev, let factory else { return }
    bufferevent_set_timeouts(bev, nil, nil)
    if let peer = SocketAddress.of(fd: fd, peer: true) { peerAddress = peer }
    guard let proto = factory.buildProtocol(peerAddress) else {
      counters.noteRefused()
      close(.aborted)
      return
    }
    guard state == .connecting else { return }  // buildProtocol stopped the attempt
    connector?.connectionEstablished(self)
    start(with: proto)
  }

  /// Ends a callback of this connection (each starts with `callbackDepth += 1`): a close
  /// asked for inside it happens now, after everything that ran inside is done.
  private func leaveCallback() {
    callbackDepth -= 1
    guard callbackDepth == 0 else { return }
    if let reason = pendingClose {
      pendingClose = nil
      finishClose(reason)
    } else if state == .disconnecting && queued == 0 {
      close(closingReason ?? .closedByPeer)
    }
  }

  // MARK: Transport

  func write(_ data: RawSpan) {
    guard state == .open || state == .disconnecting || state == .connecting, !writeShutting else { return }
    let count = data.byteCount
    guard count > 0 else { return }
    counters.noteBytesOut(count)
    data.withUnsafeBytes { bytes in
      var offset = 0
      if !buffered && state != .connecting && sendError == 0 && queued == 0 {
        let sent = send(fd, bytes.baseAddress, count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        if sent == count { return }
        if sent > 0 {
          offset = sent
        } else {
          let code = twine_socket_error()
          if code != EAGAIN && code != EWOULDBLOCK && code != EINTR {
            // Queue it anyway: libevent's own write hits the same error and reports it.
            sendError = code
          }
        }
      }
      guard let output = bev ?? makeOutputQueue() else {
        close(.error(SocketError.from(code: ENOMEM)))
        return
      }
      bufferevent_write(output, bytes.baseAddress! + offset, count - offset)
      checkQueue(output)
    }
  }

  /// Makes the bufferevent that queues what the kernel did not take; it owns the socket from now on.
  private func makeOutputQueue() -> OpaquePointer? {
    guard let made = bufferevent_socket_new(reactor.base, fd, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
      return nil
    }
    adopt(made)
    return made
  }

  func loseConnection(reason: CloseReason) {
    switch state {
    case .connecting:
      close(reason == .closedByUs ? .aborted : reason)
    case .open:
      state = .disconnecting
      closingReason = reason
      stopReading()
      // Inside a callback the close waits for it to end, so writes made after this one still go out.
      if queued == 0 && callbackDepth == 0 { close(reason) }
    case .disconnecting:
      if closingReason == nil { closingReason = reason }
    case .closed:
      return
    }
  }

  func abortConnection(reason: CloseReason) { close(reason) }

  func loseWriteConnection() {
    // TLS has no half-close of its own here: a raw shutdown would cut the record stream.
    if tls != nil { return loseConnection() }
    guard state == .open, !writeShutting else { return }
    writeShutting = true
    if queued == 0 { shutWrite() }
  }

  func pauseProducing() {
    guard hasHandles, !paused else { return }
    paused = true
    stopReading()
  }

  func resumeProducing() {
    guard hasHandles, paused else { return }
    paused = false
    startReadingIfWanted()
  }

  var peer: SocketAddress { peerAddress }

  /// Asked of the socket once, on first use (a closed socket's number may belong to another).
  private var hostAddress: SocketAddress? {
    get { extras?.hostAddress }
    set { if newValue != nil || extras != nil { madeExtras.hostAddress = newValue } }
  }

  var host: SocketAddress {
    if let hostAddress { return hostAddress }
    guard hasHandles, let found = SocketAddress.of(fd: fd, peer: false) else { return SocketAddress(.ipv4(0), port: 0) }
    hostAddress = found
    return found
  }

  var pendingWriteCount: Int { queued }

  var peerCredentials: PeerCredentials? { hasHandles ? PeerCredentials.of(fd: fd) : nil }

  var disconnecting: Bool { state == .disconnecting || state == .closed }

  func setTCPNoDelay(_ enabled: Bool) throws(SocketError) {
    try setOption(Int32(IPPROTO_TCP), TCP_NODELAY, enabled)
  }

  func setKeepAlive(_ enabled: Bool) throws(SocketError) {
    try setOption(SOL_SOCKET, SO_KEEPALIVE, enabled)
  }

  private func setOption(_ level: Int32, _ name: Int32, _ enabled: Bool) throws(SocketError) {
    guard hasHandles else { return }  // closed: a no-op, like every other call
    var value: Int32 = enabled ? 1 : 0
    if setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 { throw SocketError.current() }
  }

  // MARK: The close path

  /// Ends the connection for `reason`. Inside one of this connection's callbacks the
  /// free waits until the callback returns; elsewhere it happens now.
  func close(_ reason: CloseReason) {
    guard state != .closed else { return }
    state = .closed
    if callbackDepth > 0 {
      pendingClose = reason
    } else {
      finishClose(reason)
    }
  }

  /// The one place the bufferevent, the read event and the socket are freed, the counters updated and `connectionLost` called.
  private func finishClose(_ reason: CloseReason) {
    withExtendedLifetime(self) {
      hasHandles = false
      handshakeDeadline?.cancel()
      handshakeDeadline = nil
      if let readEvent {
        event_free(readEvent)
        self.readEvent = nil
      }
      if let bev {
        // In buffered mode the bytes may need libevent's processing (TLS): no raw flush.
        if reason == .reactorShutdown && !buffered { flushOnce(bev) }
        // bufferevent_free only drops a reference: libevent may still use the bufferevent
        // (and read its rate-limit configuration) after our callback returns. Detach the
        // configuration first, so it can be freed below.
        if rateLimitConfig != nil { bufferevent_set_rate_limit(bev, nil) }
        // close_notify only after an orderly flush (ours, or the peer's clean close).
        tls?.finish(sendCloseNotify: reason == closingReason || reason == .closedByPeer)
        bufferevent_free(bev)  // clears the callbacks first, closes the socket
        self.bev = nil
      } else {
        evutil_closesocket(fd)
      }
      if let rateLimitConfig {
        ev_token_bucket_cfg_free(rateLimitConfig)
        self.rateLimitConfig = nil
      }
      reactor.connections.remove(self)
      // Let go of everything but the closed socket's identity: a protocol that keeps its
      // transport must not keep its factory, connector or anything else alive through it.
      let proto = self.proto
      let connector = self.connector
      let producer = self.producer
      self.proto = nil
      self.connector = nil
      self.factory = nil
      self.producer = nil
      producer?.stopProducing()
      if counted {
        counters.noteClosed()
        reactor.logger.debug("connection lost", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        proto?.connectionClosed(reason)
        connector?.connectionLost(reason)
      } else {
        if tls != nil && connector == nil {
          reactor.logger.debug("TLS handshake failed", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        }
        connector?.connectionFailed(reason)
      }
    }
  }

  /// Best effort on shutdown: hand the kernel what is queued, without waiting.
  private func flushOnce(_ bev: OpaquePointer) {
    let output = bufferevent_get_output(bev)!
    // libevent freezes the start of a socket bufferevent's output (it thaws it around its
    // own writes): frozen, evbuffer_write fails at once and nothing would leave.
    evbuffer_unfreeze(output, 1)
    defer { evbuffer_freeze(output, 1) }
    while evbuffer_get_length(output) > 0 {
      guard evbuffer_write(output, fd) > 0 else { return }
    }
  }
}
