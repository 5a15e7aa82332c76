import TwineCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An in-memory `DatagramTransport` (Twisted's `FakeDatagramTransport`): drive a
/// `DatagramProtocol` with ``receive(_:from:)-([UInt8],_)`` and read what it sent in ``written``.
///
/// It follows the UDP port's rules where a protocol can tell: a datagram bigger than
/// ``maxDatagramSize`` is reported as truncated, not delivered; in connected mode only
/// the connected peer's datagrams arrive and ``write(_:to:)`` to anyone else throws
/// `EISCONN`; ``write(_:)`` unconnected throws `EDESTADDRREQ`; after ``stopListening()``
/// writes throw `EBADF` and `stopProtocol` has run once.
public final class StringDatagramTransport: DatagramTransport {
  /// A datagram the protocol sent, and where to.
  public struct Datagram: Equatable, Sendable {
    /// The datagram's bytes.
    public let bytes: [UInt8]
    /// Its destination.
    public let address: SocketAddress

    /// A datagram of `bytes` to `address`, for comparing with ``written``.
    public init(bytes: [UInt8], address: SocketAddress) {
      self.bytes = bytes
      self.address = address
    }

    /// The bytes as UTF-8 text.
    public var string: String { String(decoding: bytes, as: UTF8.self) }
  }

  /// Every datagram the protocol sent, in order.
  public private(set) var written: [Datagram] = []
  /// The local address the protocol sees.
  public var host: SocketAddress
  /// The largest datagram ``receive(_:from:)-([UInt8],_)`` delivers.
  public let maxDatagramSize: Int
  /// The address given to ``connect(to:)``, or nil.
  public private(set) var connectedAddress: SocketAddress?
  /// Groups joined and not left, as `group` or `group%interface`.
  public private(set) var groups: [String] = []
  /// The last value given to ``setLoopbackMode(_:)`` (the kernel's default is on).
  public private(set) var loopbackMode = true
  private var proto: DatagramProtocol?

  /// Makes a transport with the given local address and receive buffer size.
  public init(host: SocketAddress = SocketAddress(ipv4: (127, 0, 0, 1), port: 9999), maxDatagramSize: Int = 65507) {
    self.host = host
    self.maxDatagramSize = maxDatagramSize
  }

  /// Attaches `proto` (`startProtocol` runs), as a port does when it opens.
  public func start(_ proto: DatagramProtocol) {
    self.proto = proto
    proto.makeConnection(self)
  }

  /// True until ``stopListening()``.
  public var isListening: Bool { proto != nil }

  /// Delivers one datagram from `sender`: `datagramReceived`, or `datagramTruncated` when
  /// it is bigger than ``maxDatagramSize``; dropped when connected to someone else.
  public func receive(_ bytes: [UInt8], from sender: SocketAddress) {
    guard let proto else { return }
    if let connectedAddress, connectedAddress != sender { return }
    if bytes.count > maxDatagramSize {
      proto.datagramTruncated(from: sender, size: bytes.count)
    } else {
      bytes.withUnsafeBytes { proto.datagramReceived($0.bytes, from: sender) }
    }
  }

  /// Delivers the UTF-8 bytes of `text` as one datagram from `sender`.
  public func receive(_ text: String, from sender: SocketAddress) { receive(Array(text.utf8), from: sender) }

  /// The connected peer's host answers "port unreachable": `connectionRefused` (connected mode only).
  public func peerRefused() {
    guard connectedAddress != nil else { return }
    proto?.connectionRefused()
  }

  /// Forgets what was written so far.
  public func clearWritten() { written.removeAll() }

  // MARK: DatagramTransport

  /// Appends the datagram to ``written``.
  public func write(_ data: RawSpan, to address: SocketAddress) throws(SocketError) {
    guard proto != nil else { throw Self.error(EBADF) }
    if let connectedAddress, connectedAddress != address { throw Self.error(EISCONN) }
    written.append(Datagram(bytes: data.bytes, address: address))
  }

  /// Appends the datagram to ``written``, addressed to the connected peer.
  public func write(_ data: RawSpan) throws(SocketError) {
    guard proto != nil else { throw Self.error(EBADF) }
    guard let connectedAddress else { throw Self.error(EDESTADDRREQ) }
    written.append(Datagram(bytes: data.bytes, address: connectedAddress))
  }

  /// Records `address` as the only peer.
  public func connect(to address: SocketAddress) throws(SocketError) {
    guard proto != nil else { throw Self.error(EBADF) }
    connectedAddress = address
  }

  /// Records the group in ``groups``; `EADDRINUSE` if already joined, as the kernel says.
  public func joinGroup(_ group: String, interface: String) throws(SocketError) {
    guard proto != nil else { throw Self.error(EBADF) }
    let key = interface.isEmpty ? group : "\(group)%\(interface)"
    guard !groups.contains(key) else { throw Self.error(EADDRINUSE) }
    groups.append(key)
  }

  /// Removes the group from ``groups``; `EADDRNOTAVAIL` if it was not joined, as the kernel says.
  public func leaveGroup(_ group: String, interface: String) throws(SocketError) {
    guard proto != nil else { throw Self.error(EBADF) }
    let key = interface.isEmpty ? group : "\(group)%\(interface)"
    guard let index = groups.firstIndex(of: key) else { throw Self.error(EADDRNOTAVAIL) }
    groups.remove(at: index)
  }

  /// Records the value in ``loopbackMode``.
  public func setLoopbackMode(_ enabled: Bool) throws(SocketError) {
    guard proto != nil else { throw Self.error(EBADF) }
    loopbackMode = enabled
  }

  /// Closes: `stopProtocol` runs once; later writes throw `EBADF`.
  public func stopListening() {
    guard let proto else { return }
    self.proto = nil
    proto.portClosed()
  }

  private static func error(_ code: Int32) -> SocketError {
    SocketError(code: code, message: String(cString: strerror(code)))
  }
}
