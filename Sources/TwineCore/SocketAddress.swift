/// A socket address as a value: IPv4, IPv6 or a UNIX-domain path.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
  /// The address proper, by family.
  public enum Kind: Sendable, Hashable {
    /// An IPv4 address; `a.b.c.d` is stored as `a << 24 | b << 16 | c << 8 | d`.
    case ipv4(UInt32)
    /// An IPv6 address as two big-endian halves, and its scope id.
    case ipv6(high: UInt64, low: UInt64, scopeID: UInt32)
    /// A UNIX-domain socket path.
    case unix(path: String)
  }

  /// The address by family.
  public let kind: Kind
  /// The port, 0 for UNIX-domain addresses.
  public let port: Int

  /// Makes an address of `kind` and `port`.
  public init(_ kind: Kind, port: Int) {
    self.kind = kind
    self.port = port
  }

  /// An IPv4 address from its four bytes, `SocketAddress(ipv4: (127, 0, 0, 1), port: 8025)`.
  public init(ipv4 bytes: (UInt8, UInt8, UInt8, UInt8), port: Int) {
    let packed = UInt32(bytes.0) << 24 | UInt32(bytes.1) << 16 | UInt32(bytes.2) << 8 | UInt32(bytes.3)
    self.init(.ipv4(packed), port: port)
  }

  /// The host part as text: `127.0.0.1`, `::1` (RFC 5952 form), or the UNIX path.
  public var host: String {
    switch kind {
    case .ipv4(let value):
      return "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    case .ipv6(let high, let low, let scopeID):
      let text = Self.formatIPv6(high: high, low: low)
      return scopeID == 0 ? text : "\(text)%\(scopeID)"
    case .unix(let path):
      return path
    }
  }

  /// `host:port`, with brackets around an IPv6 host; the path for UNIX addresses.
  public var description: String {
    switch kind {
    case .ipv4: "\(host):\(port)"
    case .ipv6: "[\(host)]:\(port)"
    case .unix(let path): path
    }
  }

  private static func formatIPv6(high: UInt64, low: UInt64) -> String {
    var groups = [UInt16](repeating: 0, count: 8)
    for i in 0..<4 {
      groups[i] = UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64(i)))
      groups[i + 4] = UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64(i)))
    }
    if high == 0 && low >> 32 == 0xffff {  // IPv4-mapped
      let v4 = SocketAddress(.ipv4(UInt32(truncatingIfNeeded: low)), port: 0).host
      return "::ffff:\(v4)"
    }
    // The longest run of two or more zero groups becomes "::" (first one on a tie).
    var bestStart = -1
    var bestLength = 1
    var index = 0
    while index < 8 {
      guard groups[index] == 0 else {
        index += 1
        continue
      }
      let start = index
      while index < 8 && groups[index] == 0 { index += 1 }
      if index - start > bestLength {
        bestStart = start
        bestLength = index - start
      }
    }
    func hex(_ range: Range<Int>) -> String {
      groups[range].map { String($0, radix: 16) }.joined(separator: ":")
    }
    guard bestStart >= 0 else { return hex(0..<8) }
    return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
  }
}
