import TwineCore

/// Echo over UDP: sends every datagram back to its sender, whole.
///
/// A reply the kernel cannot take at once (full send buffer) is dropped, as UDP may drop
/// any datagram; a datagram too big for the port is reported, never echoed cut short.
public final class UDPEcho: DatagramProtocol {
  /// Datagrams dropped because they were bigger than the port's receive buffer.
  public private(set) var truncated = 0

  public override func datagramReceived(_ data: RawSpan, from sender: SocketAddress) {
    try? transport.write(data, to: sender)
  }

  public override func datagramTruncated(from sender: SocketAddress, size: Int) {
    truncated += 1
  }
}
