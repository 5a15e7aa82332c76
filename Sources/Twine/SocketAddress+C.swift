import CLibevent

extension SocketAddress {
  /// Reads a C `sockaddr` (IPv4, IPv6 or UNIX); nil for other families.
  init?(_ address: UnsafePointer<sockaddr>, length: Int) {
    switch Int32(address.pointee.sa_family) {
    case AF_INET:
      let sin = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self)
      self.init(.ipv4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: Int(UInt16(bigEndian: sin.sin_port)))
    case AF_INET6:
      let sin6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self)
      let (high, low) = withUnsafeBytes(of: sin6.sin6_addr) { raw in
        (
          UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
          UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        )
      }
      self.init(
        .ipv6(high: high, low: low, scopeID: sin6.sin6_scope_id), port: Int(UInt16(bigEndian: sin6.sin6_port)))
    case AF_UNIX:
      let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
      let count = max(0, length - pathOffset)
      let path = UnsafeRawPointer(address).advanced(by: pathOffset).withMemoryRebound(to: UInt8.self, capacity: count) {
        let bytes = UnsafeBufferPointer(start: $0, count: count)
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
      }
      self.init(.unix(path: path), port: 0)
    default:
      return nil
    }
  }

  /// The local (`getsockname`) or remote (`getpeername`) address of `fd`; nil on error.
  static func of(fd: Int32, peer: Bool) -> SocketAddress? {
    try? peer ? Syscall.peerAddress(fd) : Syscall.localAddress(fd)
  }
}

/// A numeric IPv4 or IPv6 address and port as a C `sockaddr_storage`.
struct NumericAddress {
  var storage = sockaddr_storage()
  var length: socklen_t = 0

  /// An empty address, to be filled in.
  init() {}

  /// Parses `host` (empty means IPv4 any) with `port`; nil unless the host is numeric.
  init?(host: String, port: Int) {
    guard (0...65535).contains(port) else { return nil }
    var bare = host
    if bare.hasPrefix("[") && bare.hasSuffix("]") { bare = String(bare.dropFirst().dropLast()) }
    if bare.isEmpty { bare = "0.0.0.0" }
    var sin = sockaddr_in()
    if inet_pton(AF_INET, bare, &sin.sin_addr) == 1 {
      sin.sin_family = sa_family_t(AF_INET)
      sin.sin_port = UInt16(port).bigEndian
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
      return
    }
    var sin6 = sockaddr_in6()
    if inet_pton(AF_INET6, bare, &sin6.sin6_addr) == 1 {
      sin6.sin6_family = sa_family_t(AF_INET6)
      sin6.sin6_port = UInt16(port).bigEndian
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
      return
    }
    return nil
  }

  /// Calls `body` with the address as a `sockaddr` pointer and its length.
  mutating func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    let length = self.length
    return withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
    }
  }
}
