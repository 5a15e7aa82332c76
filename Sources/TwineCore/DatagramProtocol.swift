/// The object a user subclasses to speak a datagram protocol over UDP (Twisted's
/// `DatagramProtocol`): one instance per port, told about each datagram that arrives.
///
/// Events arrive on the reactor's thread: ``startProtocol()`` once when the port opens,
/// ``datagramReceived(_:from:)`` (or ``datagramTruncated(from:size:)``) any number of
/// times, then ``stopProtocol()`` once when the port closes. None arrives after it.
///
/// ```swift
/// final class UDPEcho: DatagramProtocol {
///   override func datagramReceived(_ data: RawSpan, from sender: SocketAddress) {
///     try? transport.write(data, to: sender)
///   }
/// }
/// ```
open class DatagramProtocol {
  /// The port this protocol sends through; set before ``startProtocol()``. It stays set
  /// after the port closes, where writes throw `EBADF`.
  public internal(set) var transport: (any DatagramTransport)!

  /// True between ``makeConnection(_:)`` and ``stopProtocol()``.
  public internal(set) var isRunning = false

  /// Makes a protocol.
  public init() {}

  /// Attaches the transport and calls ``startProtocol()``. Called by transports.
  public final func makeConnection(_ transport: any DatagramTransport) {
    self.transport = transport
    isRunning = true
    startProtocol()
  }

  /// Called by transports when the port closes: records it, then calls ``stopProtocol()`` once.
  public final func portClosed() {
    guard isRunning else { return }
    isRunning = false
    stopProtocol()
  }

  /// The port is open and ``transport`` is set: send a first datagram, join groups, connect.
  open func startProtocol() {}

  /// The port has closed; nothing arrives after this.
  open func stopProtocol() {}

  /// One whole datagram arrived from `sender`. `data` is borrowed from the reactor's
  /// receive buffer and valid only during this call: copy what you keep (`data.bytes`).
  open func datagramReceived(_ data: RawSpan, from sender: SocketAddress) {}

  /// A datagram of `size` bytes arrived from `sender`, bigger than the transport's
  /// ``DatagramTransport/maxDatagramSize``; it was dropped, not delivered cut short.
  open func datagramTruncated(from sender: SocketAddress, size: Int) {}

  /// In connected mode, the peer's host answered an earlier datagram with "port
  /// unreachable" (`ECONNREFUSED`, from ICMP). The port stays open.
  open func connectionRefused() {}
}
