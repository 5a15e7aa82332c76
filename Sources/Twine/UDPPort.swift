import CLibevent
import Glibc

/// A UDP socket bound to a port (Twisted's `udp.Port`): the `DatagramTransport` its
/// `DatagramProtocol` sends through. Owns the socket and one persistent `EV_READ`
/// event; made by ``Reactor/listenUDP(_:protocol:interface:maxDatagramSize:)``.
///
/// Receiving: each readable event reads up to `datagramsPerCallback` datagrams with
/// `recvfrom(MSG_TRUNC)` into the reactor's shared read buffer, so the real size of a
/// datagram is known even when it did not fit: one that fits is lent to
/// `datagramReceived` as a borrowed `RawSpan` (no copy, no allocation), a bigger one is
/// reported to `datagramTruncated` and dropped. ICMP errors (`ECONNREFUSED`) and a full
/// buffer (`ENOBUFS`) never close the port.
///
/// Loop guard: a datagram from the port itself (its own address, or any address of this
/// host with its port number; see ``guardsAgainstLoops``) is dropped before the protocol
/// sees it and counted in ``droppedLoops``; the first one per port is logged as a warning.
/// Answering it would send the answer to the port itself, so one forged datagram would
/// keep an echo busy forever.
public final class UDPPort: DatagramTransport {
  /// Weak: the reactor's shutdown closes every port it made (its gate makes none after), so
  /// a port outliving its reactor is already closed and inert; the weak reference makes
  /// that a guarantee rather than a rule (nil inside the reactor's deinit, too).
  private weak var reactor: Reactor?
  private var readEvent: OpaquePointer?
  private var fd: Int32
  /// The protocol, until the port closes (that breaks the protocol ↔ transport cycle).
  private var proto: DatagramProtocol?
  /// The address family of the socket (`AF_INET` or `AF_INET6`).
  private let family: Int32
  /// The largest datagram delivered whole.
  public let maxDatagramSize: Int
  /// The bound address, kept for after the port closes.
  private var boundAddress: SocketAddress
  /// The address given to ``connect(to:)``, or nil.
  public private(set) var connectedAddress: SocketAddress?
  /// Recognises datagrams from the port itself.
  private var loopGuard: UDPLoopGuard
  /// Datagrams dropped because they came from the port itself (see ``guardsAgainstLoops``).
  public private(set) var droppedLoops = 0
  /// Drop datagrams whose source is this port: its own address, 127.0.0.0/8, ::1, 0.0.0.0,
  /// :: or (bound to every interface) any interface address, with the port's number. On by
  /// default. Turn it off only to hear your own multicast with loopback mode on, and then
  /// never answer the sender: the answer would come back to you.
  public var guardsAgainstLoops = true

  /// Datagrams one readable event may read before yielding to other sockets.
  static let datagramsPerCallback = 32

  init(
    reactor: Reactor, port: Int, interface: String, maxDatagramSize: Int, proto: DatagramProtocol
  ) throws(TwineError) {
    precondition(
      (1...min(65535, reactor.readBuffer.count)).contains(maxDatagramSize),
      "maxDatagramSize must be between 1 and 65535")
    guard let address = NumericAddress(host: interface, port: port) else {
      throw .badAddress(interface.isEmpty ? "port \(port)" : interface)
    }
    self.reactor = reactor
    self.maxDatagramSize = maxDatagramSize
    self.family = address.family
    let fd: Int32
    do throws(SocketError) {
      fd = try Syscall.socket(family, .datagram)
      do throws(SocketError) {
        try Syscall.bind(fd, address)
      } catch {
        try? Syscall.close(fd)
        throw error
      }
    } catch {
      throw .cannotListen(interface: interface, port: port, cause: error)
    }
    self.fd = fd
    self.proto = proto
    boundAddress = (try? Syscall.localAddress(fd)) ?? SocketAddress(.ipv4(0), port: port)
    loopGuard = UDPLoopGuard(boundTo: boundAddress)
    let context = Unmanaged.passUnretained(self).toOpaque()
    guard
      let event = event_new(
        reactor.base, fd, Int16(EV_READ | EV_PERSIST),
        { _, _, context in Unmanaged<UDPPort>.fromOpaque(context!).takeUnretainedValue().readable() }, context)
    else {
      try? Syscall.close(fd)
      self.fd = -1
      throw .libevent("event_new")
    }
    readEvent = event
    reactor.udpPorts[ObjectIdentifier(self)] = self
    proto.makeConnection(self)
    // The protocol may have closed the port in startProtocol.
    if let readEvent { event_add(readEvent, nil) }
  }

  deinit { assert(readEvent == nil, "UDPPort freed while listening") }

  /// True until ``stopListening()``.
  public var isListening: Bool { readEvent != nil }

  /// The local address; its port is the real one when 0 was asked for.
  public var host: SocketAddress {
    guard fd >= 0, let current = try? Syscall.localAddress(fd) else { return boundAddress }
    return current
  }

  /// Closes the socket, then calls `stopProtocol`. Safe inside the protocol's callbacks. Idempotent.
  public func stopListening() {
    guard let readEvent else { return }
    withExtendedLifetime(self) {
      event_free(readEvent)
      self.readEvent = nil
      boundAddress = host
      try? Syscall.close(fd)  // the descriptor is gone even when close reports an error
      fd = -1
      reactor?.udpPorts[ObjectIdentifier(self)] = nil
      let proto = self.proto
      self.proto = nil
      proto?.portClosed()
    }
  }

  // MARK: Receiving

  /// The socket is readable: read up to ``datagramsPerCallback`` datagrams and hand each up.
  private func readable() {
    guard let reactor else { return }
    withExtendedLifetime(self) {
      let buffer = UnsafeMutableRawBufferPointer(rebasing: reactor.readBuffer[..<maxDatagramSize])
      var storage = sockaddr_storage()
      for _ in 0..<Self.datagramsPerCallback {
        guard readEvent != nil, let proto else { return }
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let received: Int?
        do throws(SocketError) {
          received = try withUnsafeMutablePointer(to: &storage) { (storage) throws(SocketError) -> Int? in
            try storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SocketError) -> Int? in
              try Syscall.recvFrom(fd, buffer, flags: Int32(MSG_TRUNC), sa, &length)
            }
          }
        } catch {
          if error.code == ECONNREFUSED {
            proto.connectionRefused()  // a connected peer's port is unreachable (ICMP); keep going
            continue
          }
          // Other pending socket errors (ICMP-reported, ENOBUFS, ENOMEM) are consumed by
          // this read; the port stays open.
          reactor.logger.warning("UDP receive failed", metadata: ["port": "\(boundAddress)", "error": "\(error)"])
          return
        }
        guard let got = received else { return }  // EAGAIN: nothing more waits
        let sender = withUnsafePointer(to: &storage) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0, length: Int(length)) }
        }
        guard let sender else { continue }  // no address of a family we know: nobody to tell
        if guardsAgainstLoops && loopGuard.isFromSelf(sender, now: reactor.now) {
          dropLoop(from: sender, reactor: reactor)
          continue
        }
        if got > maxDatagramSize {
          proto.datagramTruncated(from: sender, size: got)
        } else {
          proto.datagramReceived(UnsafeRawBufferPointer(rebasing: buffer[..<got]).bytes, from: sender)
        }
      }
    }
  }

  /// Counts a datagram from the port itself; logs the first one.
  private func dropLoop(from sender: SocketAddress, reactor: Reactor) {
    droppedLoops += 1
    guard droppedLoops == 1 else { return }
    reactor.logger.warning(
      "UDP datagram from the port's own address dropped: answering it would loop (a forged source?); further ones are only counted",
      metadata: ["port": "\(boundAddress)", "from": "\(sender)"])
  }

  // MARK: Sending

  /// Sends `data` as one datagram with `sendto`; throws the kernel's error (the port stays open).
  public func write(_ data: RawSpan, to address: SocketAddress) throws(SocketError) {
    guard fd >= 0 else { throw SocketError.from(code: EBADF) }
    if let connectedAddress, connectedAddress != address { throw SocketError.from(code: EISCONN) }
    guard let destination = NumericAddress(address), destination.family != AF_UNIX else {
      throw SocketError(code: EAFNOSUPPORT, message: "not an IP address and port: \(address)")
    }
    let sent = try data.withUnsafeBytes { (bytes) throws(SocketError) -> Int? in
      try Syscall.sendTo(fd, bytes, to: destination)
    }
    if sent == nil { throw SocketError.from(code: EAGAIN) }  // the socket's buffer is full: this datagram is dropped
  }

  /// Sends `data` as one datagram to the connected address; `EDESTADDRREQ` when not connected.
  public func write(_ data: RawSpan) throws(SocketError) {
    guard fd >= 0 else { throw SocketError.from(code: EBADF) }
    let sent = try data.withUnsafeBytes { (bytes) throws(SocketError) -> Int? in
      try Syscall.send(fd, bytes, flags: Int32(MSG_NOSIGNAL))
    }
    if sent == nil { throw SocketError.from(code: EAGAIN) }  // the socket's buffer is full: this datagram is dropped
  }

  /// `connect(2)`s the socket to `address`: the kernel then drops datagrams from anyone else.
  public func connect(to address: SocketAddress) throws(SocketError) {
    guard fd >= 0 else { throw SocketError.from(code: EBADF) }
    guard let destination = NumericAddress(address), destination.family != AF_UNIX else {
      throw SocketError(code: EAFNOSUPPORT, message: "not an IP address and port: \(address)")
    }
    try Syscall.connect(fd, destination)
    connectedAddress = address
  }

  // MARK: Multicast

  /// `IP_ADD_MEMBERSHIP` / `IPV6_JOIN_GROUP`; the group must be of the port's family.
  public func joinGroup(_ group: String, interface: String) throws(SocketError) {
    try changeMembership(group, interface: interface, join: true)
  }

  /// `IP_DROP_MEMBERSHIP` / `IPV6_LEAVE_GROUP`; `EADDRNOTAVAIL` for a group not joined.
  public func leaveGroup(_ group: String, interface: String) throws(SocketError) {
    try changeMembership(group, interface: interface, join: false)
  }

  /// `IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP`.
  public func setLoopbackMode(_ enabled: Bool) throws(SocketError) {
    if family == AF_INET6 {
      try setOption(Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, Int32(enabled ? 1 : 0))
    } else {
      try setOption(Int32(IPPROTO_IP), IP_MULTICAST_LOOP, Int32(enabled ? 1 : 0))
    }
  }

  private func changeMembership(_ group: String, interface: String, join: Bool) throws(SocketError) {
    guard let groupAddress = SocketAddress(numericHost: group, port: 0) else {
      throw SocketError(code: EINVAL, message: "not a numeric multicast address: \(group)")
    }
    switch (groupAddress.kind, family) {
    case (.ipv4(let value), AF_INET):
      var request = ip_mreq()
      request.imr_multiaddr.s_addr = value.bigEndian
      if !interface.isEmpty {
        guard case .ipv4(let local)? = SocketAddress(numericHost: interface, port: 0)?.kind else {
          throw SocketError(code: EINVAL, message: "not a numeric IPv4 interface address: \(interface)")
        }
        request.imr_interface.s_addr = local.bigEndian
      }
      try setOption(Int32(IPPROTO_IP), join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, request)
    case (.ipv6, AF_INET6):
      var request = ipv6_mreq()
      guard var numeric = NumericAddress(groupAddress) else { throw SocketError.from(code: EINVAL) }
      numeric.withSockaddr { sa, _ in
        request.ipv6mr_multiaddr = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in6.self).sin6_addr
      }
      if !interface.isEmpty {
        let index = UInt32(interface) ?? if_nametoindex(interface)
        guard index != 0 else { throw SocketError(code: ENODEV, message: "no such network interface: \(interface)") }
        request.ipv6mr_interface = index
      }
      try setOption(Int32(IPPROTO_IPV6), join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, request)
    default:
      let socketKind = family == AF_INET6 ? "IPv6" : "IPv4"
      throw SocketError(code: EAFNOSUPPORT, message: "group \(group) is not of this \(socketKind) port's family")
    }
  }

  private func setOption<Value>(_ level: Int32, _ name: Int32, _ value: Value) throws(SocketError) {
    guard fd >= 0 else { throw SocketError.from(code: EBADF) }
    try Syscall.setOption(fd, level, name, value)
  }
}
