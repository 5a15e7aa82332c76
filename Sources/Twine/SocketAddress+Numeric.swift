import CLibevent

extension SocketAddress {
  /// Parses a numeric IPv4 or IPv6 host (`127.0.0.1`, `::1`, `[::1]`) with `port`;
  /// nil for anything else (names are not resolved here).
  public init?(numericHost host: String, port: Int) {
    guard !host.isEmpty, var numeric = NumericAddress(host: host, port: port),
      let address = numeric.withSockaddr({ SocketAddress($0, length: Int($1)) })
    else { return nil }
    self = address
  }
}

extension NumericAddress {
  /// `address` as a C `sockaddr`: IPv4, IPv6 (with its scope id) or a UNIX path; nil
  /// when the port is out of range or the path does not fit `sun_path`.
  init?(_ address: SocketAddress) {
    self.init()
    switch address.kind {
    case .ipv4(let value):
      guard (0...65535).contains(address.port) else { return nil }
      var sin = sockaddr_in()
      sin.sin_family = sa_family_t(AF_INET)
      sin.sin_port = UInt16(address.port).bigEndian
      sin.sin_addr.s_addr = value.bigEndian
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
    case .ipv6(let high, let low, let scopeID):
      guard (0...65535).contains(address.port) else { return nil }
      var sin6 = sockaddr_in6()
      sin6.sin6_family = sa_family_t(AF_INET6)
      sin6.sin6_port = UInt16(address.port).bigEndian
      sin6.sin6_scope_id = scopeID
      withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
        raw.storeBytes(of: high.bigEndian, as: UInt64.self)
        raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
      }
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    case .unix(let path):
      var sun = sockaddr_un()
      let capacity = MemoryLayout.size(ofValue: sun.sun_path)
      let bytes = Array(path.utf8)
      guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else { return nil }
      sun.sun_family = sa_family_t(AF_UNIX)
      withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: bytes) }
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sun, as: sockaddr_un.self) }
      let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
      length = socklen_t(pathOffset + bytes.count + 1)
    }
  }

  /// The address family (`AF_INET`, `AF_INET6` or `AF_UNIX`).
  var family: Int32 {
    withUnsafeBytes(of: storage) { Int32($0.load(as: sockaddr.self).sa_family) }
  }
}
