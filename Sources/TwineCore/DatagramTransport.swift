/// The UDP port a ``DatagramProtocol`` sends through (Twisted's `IUDPTransport`,
/// `IUDPConnectedTransport` and `IMulticastTransport` in one).
///
/// All methods are called on the reactor's thread. A datagram is sent whole, at once, or
/// not at all: a write that the kernel refuses throws the `SocketError` (for example
/// `ENOBUFS` or `EAGAIN` when the send buffer is full, `EMSGSIZE` when it is too big),
/// and the port stays open. After ``stopListening()`` every write throws `EBADF`.
public protocol DatagramTransport: AnyObject {
  /// Sends `data` as one datagram to `address`. In connected mode, `address` must be
  /// the connected one (else `EISCONN`).
  func write(_ data: RawSpan, to address: SocketAddress) throws(SocketError)

  /// Sends `data` as one datagram to the connected address (``connect(to:)``);
  /// `EDESTADDRREQ` when not connected.
  func write(_ data: RawSpan) throws(SocketError)

  /// Connected mode: from now on the port talks to `address` only. The kernel drops
  /// datagrams from anyone else, and "port unreachable" answers reach
  /// ``DatagramProtocol/connectionRefused()``. May be called again to change peers.
  func connect(to address: SocketAddress) throws(SocketError)

  /// The address given to ``connect(to:)``, or nil when not connected.
  var connectedAddress: SocketAddress? { get }

  /// Joins the multicast `group` (a numeric IPv4 or IPv6 address) on `interface`: for
  /// IPv4 the numeric address of a local interface, for IPv6 an interface name or
  /// index; empty lets the kernel choose.
  func joinGroup(_ group: String, interface: String) throws(SocketError)

  /// Leaves a multicast group joined with ``joinGroup(_:interface:)``.
  func leaveGroup(_ group: String, interface: String) throws(SocketError)

  /// Whether multicast datagrams this port sends are looped back to listeners on this host.
  func setLoopbackMode(_ enabled: Bool) throws(SocketError)

  /// The receive buffer size: the largest datagram delivered. A bigger one is dropped and
  /// reported to ``DatagramProtocol/datagramTruncated(from:size:)`` with its real size.
  var maxDatagramSize: Int { get }

  /// The local address; its port is the real one when 0 was asked for.
  var host: SocketAddress { get }

  /// Closes the socket; ``DatagramProtocol/stopProtocol()`` follows. Idempotent.
  func stopListening()
}

extension DatagramTransport {
  /// Sends `bytes` as one datagram to `address`.
  public func write(_ bytes: [UInt8], to address: SocketAddress) throws(SocketError) {
    let failure = bytes.withUnsafeBytes { raw -> SocketError? in
      do throws(SocketError) { try write(raw.bytes, to: address) } catch { return error }
      return nil
    }
    if let failure { throw failure }
  }

  /// Sends the UTF-8 bytes of `string` as one datagram to `address`.
  public func write(_ string: String, to address: SocketAddress) throws(SocketError) {
    try write(Array(string.utf8), to: address)
  }

  /// Sends `bytes` as one datagram to the connected address.
  public func write(_ bytes: [UInt8]) throws(SocketError) {
    let failure = bytes.withUnsafeBytes { raw -> SocketError? in
      do throws(SocketError) { try write(raw.bytes) } catch { return error }
      return nil
    }
    if let failure { throw failure }
  }

  /// Sends the UTF-8 bytes of `string` as one datagram to the connected address.
  public func write(_ string: String) throws(SocketError) {
    try write(Array(string.utf8))
  }

  /// Joins the multicast `group`, letting the kernel choose the interface.
  public func joinGroup(_ group: String) throws(SocketError) { try joinGroup(group, interface: "") }

  /// Leaves the multicast `group` joined on the kernel's choice of interface.
  public func leaveGroup(_ group: String) throws(SocketError) { try leaveGroup(group, interface: "") }
}
