/// UDP: listening for datagrams.
extension Reactor {
  /// Binds a UDP socket to `port` (0 picks a free one; read ``UDPPort/host``) and hands
  /// every datagram that arrives to `protocol`, whose `transport` becomes the port.
  /// `interface` is a numeric IPv4 or IPv6 address; empty means every IPv4 interface.
  /// Datagrams bigger than `maxDatagramSize` (1...65535) are reported as truncated, not delivered.
  /// Throws ``TwineError/cannotListen(interface:port:cause:)`` when the port is taken.
  /// After ``shutdown()`` it throws ``TwineError/reactorShutDown``: nothing is bound and
  /// `proto` is not started.
  @discardableResult
  public func listenUDP(
    _ port: Int, protocol proto: DatagramProtocol, interface: String = "", maxDatagramSize: Int = 65507
  ) throws(TwineError) -> UDPPort {
    try admit("listenUDP")
    return try UDPPort(reactor: self, port: port, interface: interface, maxDatagramSize: maxDatagramSize, proto: proto)
  }
}
