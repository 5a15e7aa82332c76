import CLibevent

/// What a protocol reads of its connection: addresses, credentials, the queue, the phase,
/// and the socket options it may set. Every call is a no-op once the connection closed.
extension TCPConnection {
  var peer: SocketAddress { peerAddress }

  var host: SocketAddress {
    if let found = extras?.hostAddress { return found }
    // Asked of the socket once, on first use (a closed socket's number may belong to another).
    guard hasHandles, let found = SocketAddress.of(fd: fd, peer: false) else { return SocketAddress(.ipv4(0), port: 0) }
    madeExtras.hostAddress = found
    return found
  }

  var pendingWriteCount: Int { queued }

  var peerCredentials: PeerCredentials? { hasHandles ? PeerCredentials.of(fd: fd) : nil }

  var disconnecting: Bool { life.isDisconnecting }

  /// The phase, for the connector and the reactor.
  var state: StreamLifecycle.Phase { life.phase }

  func setTCPNoDelay(_ enabled: Bool) throws(SocketError) {
    if hasHandles { try Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, enabled) }  // closed: a no-op
  }

  func setKeepAlive(_ enabled: Bool) throws(SocketError) {
    if hasHandles { try Syscall.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, enabled) }
  }
}
