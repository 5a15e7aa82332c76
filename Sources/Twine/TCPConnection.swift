import CLibevent

/// One TCP connection: the ``Transport`` a protocol writes to. Owns one
/// `bufferevent` (`BEV_OPT_CLOSE_ON_FREE`, so it owns the socket too) and its protocol.
///
/// Every way a connection ends goes through ``close(_:)``; ``finishClose(_:)``
/// is the one place the bufferevent is freed, the counters updated and
/// `connectionLost` called.
///
/// The data path: libevent reads at most 4 KiB per read callback on 2.1.12, so the
/// read callback tops the input buffer up straight from the socket
/// (`evbuffer_reserve_space` + `readv` + `evbuffer_commit_space`), then hands each
/// chain to `dataReceived` as a borrowed `RawSpan` and drains it. `write` sends
/// straight to the socket when nothing is queued, and queues only what the
/// kernel did not take (one copy, into the output evbuffer).
final class TCPConnection: Transport {
  enum State { case connecting, open, disconnecting, closed }

  /// Unowned(unsafe): the reactor frees this object's libevent handle in its shutdown, before it goes,
  /// and nothing reads `reactor` once the handle is gone (that also makes reads in the reactor's deinit legal).
  private unowned(unsafe) let reactor: Reactor
  private var bev: OpaquePointer?
  /// The socket, owned by the bufferevent.
  let fd: Int32
  private(set) var state: State
  /// The protocol, until the connection closes (that breaks the protocol ↔ transport cycle).
  private var proto: Protocol?
  private let factory: Factory
  private let counters: ConnectionCounters
  /// For client connections: the connector to tell about failure or loss.
  private let connector: TCPConnector?
  /// Callbacks for this connection on the stack; a close inside one waits for it to end.
  private var callbackDepth = 0
  private var pendingClose: CloseReason?
  private var paused = false
  /// The peer closed its side during a top-up read; handled after delivery.
  private var peerClosed = false
  /// A socket error seen by a direct send or a top-up read; reported by the close.
  private var socketError: Int32 = 0
  private var counted = false
  private(set) var peerAddress: SocketAddress

  /// How much one read callback may read past libevent's 4 KiB, so one busy connection cannot starve the rest.
  private static let readBudget = 1 << 20
  /// The space asked of the input buffer per top-up `readv`.
  private static let topUpChunk = 64 << 10

  /// Wraps an accepted socket (server side) or a connecting bufferevent (client side).
  init(
    reactor: Reactor, bev: OpaquePointer, factory: Factory, peer: SocketAddress, connector: TCPConnector?,
    state: State
  ) {
    self.reactor = reactor
    self.bev = bev
    self.fd = bufferevent_getfd(bev)
    self.factory = factory
    self.counters = factory.counters
    self.peerAddress = peer
    self.connector = connector
    self.state = state
    reactor.connections[ObjectIdentifier(self)] = self
    let context = Unmanaged.passUnretained(self).toOpaque()
    bufferevent_setcb(
      bev,
      { _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().readable() },
      { _, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().writeDrained() },
      { _, what, context in Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().event(what) },
      context)
  }

  deinit { assert(bev == nil, "TCPConnection freed with its bufferevent alive") }

  /// Starts a server-side connection: builds the protocol's connection and starts reading.
  func start(with proto: Protocol) {
    self.proto = proto
    counted = true
    counters.noteOpened()
    state = .open
    bufferevent_enable(bev, Int16(EV_READ))
    reactor.logger.debug("connection made", metadata: ["peer": "\(peerAddress)"])
    inCallback { proto.makeConnection(self) }
  }

  // MARK: Callbacks from libevent

  private func readable() {
    guard let bev else { return }
    inCallback {
      let input = bufferevent_get_input(bev)!
      topUp(input)
      deliver(input)
      if peerClosed && state == .open { peerFinished() }
    }
  }

  /// Reads what the socket holds past libevent's 4 KiB cap into the input buffer.
  private func topUp(_ input: OpaquePointer) {
    guard evbuffer_get_length(input) >= 4096 else { return }
    var total = 0
    withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { vecs in
      while total < Self.readBudget {
        let reserved = evbuffer_reserve_space(input, Self.topUpChunk, vecs.baseAddress, 2)
        guard reserved > 0 else { return }
        let got = readv(fd, vecs.baseAddress, reserved)
        if got <= 0 {
          evbuffer_commit_space(input, vecs.baseAddress, 0)
          if got == 0 {
            peerClosed = true
          } else {
            let code = twine_socket_error()
            if code != EAGAIN && code != EWOULDBLOCK && code != EINTR { socketError = code }
          }
          return
        }
        var left = got
        for i in 0..<Int(reserved) {
          let used = min(left, vecs[i].iov_len)
          vecs[i].iov_len = used
          left -= used
        }
        evbuffer_commit_space(input, vecs.baseAddress, reserved)
        total += got
        if got < Self.topUpChunk { return }
      }
    }
  }

  /// Hands the input buffer's chains to the protocol as borrowed views, draining what was handed up.
  private func deliver(_ input: OpaquePointer) {
    withUnsafeTemporaryAllocation(of: iovec.self, capacity: Int(TWINE_MAX_IOVECS)) { vecs in
      while !paused && state == .open && evbuffer_get_length(input) > 0, let proto {
        let count = Int(evbuffer_peek(input, -1, nil, vecs.baseAddress, TWINE_MAX_IOVECS))
        guard count > 0 else { return }
        var handed = 0
        for i in 0..<min(count, Int(TWINE_MAX_IOVECS)) {
          let chunk = UnsafeRawBufferPointer(start: vecs[i].iov_base, count: vecs[i].iov_len)
          handed += chunk.count
          proto.dataReceived(chunk.bytes)
          if paused || state != .open { break }
        }
        evbuffer_drain(input, handed)
        counters.noteBytesIn(handed)
      }
    }
    if socketError != 0 && state != .closed { close(.fromSocketError(socketError)) }
  }

  private func writeDrained() {
    inCallback {
      if state == .disconnecting, let bev, evbuffer_get_length(bufferevent_get_output(bev)) == 0 {
        close(peerClosed ? .closedByPeer : .closedByUs)
      }
    }
  }

  private func event(_ what: Int16) {
    let code = twine_socket_error()  // read before anything else can change it
    let what = Int32(what)
    inCallback {
      if what & BEV_EVENT_CONNECTED != 0 {
        connected()
      } else if what & BEV_EVENT_EOF != 0 {
        peerClosed = true
        if let bev { deliver(bufferevent_get_input(bev)) }
        peerFinished()
      } else if what & BEV_EVENT_TIMEOUT != 0 {
        close(.timedOut)
      } else if what & BEV_EVENT_ERROR != 0 {
        close(.fromSocketError(socketError != 0 ? socketError : code))
      }
    }
  }

  /// The peer sent FIN: flush what is queued (the peer may still read), then close.
  private func peerFinished() {
    guard let bev, state == .open || state == .disconnecting else { return }
    if evbuffer_get_length(bufferevent_get_output(bev)) == 0 {
      close(.closedByPeer)
    } else {
      state = .disconnecting
      bufferevent_disable(bev, Int16(EV_READ))
    }
  }

  /// A client connection completed: build the protocol and start.
  private func connected() {
    guard state == .connecting, let bev, let connector else { return }
    bufferevent_set_timeouts(bev, nil, nil)
    if let peer = SocketAddress.of(fd: fd, peer: true) { peerAddress = peer }
    guard let proto = factory.buildProtocol(peerAddress) else {
      counters.noteRefused()
      close(.aborted)
      return
    }
    connector.connectionEstablished(self)
    start(with: proto)
  }

  /// Runs `body` as a callback of this connection: a close requested inside waits for it to end.
  private func inCallback(_ body: () -> Void) {
    callbackDepth += 1
    body()
    callbackDepth -= 1
    if callbackDepth == 0, let reason = pendingClose {
      pendingClose = nil
      finishClose(reason)
    }
  }

  // MARK: Transport

  func write(_ data: RawSpan) {
    guard let bev, state == .open || state == .disconnecting || state == .connecting else { return }
    let count = data.byteCount
    guard count > 0 else { return }
    counters.noteBytesOut(count)
    data.withUnsafeBytes { bytes in
      var offset = 0
      if state != .connecting && socketError == 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0 {
        let sent = send(fd, bytes.baseAddress, count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        if sent == count { return }
        if sent > 0 {
          offset = sent
        } else {
          let code = twine_socket_error()
          if code != EAGAIN && code != EWOULDBLOCK && code != EINTR {
            // Queue it anyway: libevent's own write hits the same error and reports it.
            socketError = code
          }
        }
      }
      bufferevent_write(bev, bytes.baseAddress! + offset, count - offset)
    }
  }

  func loseConnection() {
    guard let bev else { return }
    switch state {
    case .connecting:
      close(.aborted)
    case .open:
      state = .disconnecting
      bufferevent_disable(bev, Int16(EV_READ))
      if evbuffer_get_length(bufferevent_get_output(bev)) == 0 { close(.closedByUs) }
    case .disconnecting, .closed:
      return
    }
  }

  func abortConnection() { close(.aborted) }

  func pauseProducing() {
    guard let bev, !paused else { return }
    paused = true
    bufferevent_disable(bev, Int16(EV_READ))
  }

  func resumeProducing() {
    guard let bev, paused else { return }
    paused = false
    guard state == .open else { return }
    bufferevent_enable(bev, Int16(EV_READ))
    if evbuffer_get_length(bufferevent_get_input(bev)) > 0 {
      // Bytes read before the pause: deliver them from the loop, not from inside this call.
      bufferevent_trigger(bev, Int16(EV_READ), Int32(BEV_TRIG_DEFER_CALLBACKS.rawValue))
    }
  }

  var peer: SocketAddress { peerAddress }

  var host: SocketAddress {
    SocketAddress.of(fd: fd, peer: false) ?? SocketAddress(.ipv4(0), port: 0)
  }

  var pendingWriteCount: Int {
    guard let bev else { return 0 }
    return evbuffer_get_length(bufferevent_get_output(bev))
  }

  func setTCPNoDelay(_ enabled: Bool) throws(SocketError) {
    try setOption(Int32(IPPROTO_TCP), TCP_NODELAY, enabled)
  }

  func setKeepAlive(_ enabled: Bool) throws(SocketError) {
    try setOption(SOL_SOCKET, SO_KEEPALIVE, enabled)
  }

  private func setOption(_ level: Int32, _ name: Int32, _ enabled: Bool) throws(SocketError) {
    guard bev != nil else { throw SocketError.from(code: EBADF) }
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

  /// The one place a bufferevent is freed, the counters updated and `connectionLost` called.
  private func finishClose(_ reason: CloseReason) {
    withExtendedLifetime(self) {
      if let bev {
        if reason == .reactorShutdown { flushOnce(bev) }
        bufferevent_free(bev)  // clears the callbacks first, closes the socket
        self.bev = nil
      }
      reactor.connections[ObjectIdentifier(self)] = nil
      let proto = self.proto
      self.proto = nil
      if counted {
        counters.noteClosed()
        reactor.logger.debug("connection lost", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        proto?.connectionClosed(reason)
        connector?.connectionLost(reason)
      } else {
        connector?.connectionFailed(reason)
      }
    }
  }

  /// Best effort on shutdown: hand the kernel what is queued, without waiting.
  private func flushOnce(_ bev: OpaquePointer) {
    let output = bufferevent_get_output(bev)!
    while evbuffer_get_length(output) > 0 {
      guard evbuffer_write(output, fd) > 0 else { return }
    }
  }
}
