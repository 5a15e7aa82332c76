/// Numeric address text to addresses, in Swift (no `inet_pton`: TwineCore imports no C).
extension SocketAddress {
  /// The IPv4 address `a.b.c.d` written in `text` (four decimal parts 0...255, up to three
  /// digits each), packed as ``Kind/ipv4(_:)`` stores it; nil for anything else.
  static func parseIPv4<Text: Collection<UInt8>>(_ text: Text) -> UInt32? {
    var value: UInt32 = 0
    var part: UInt32 = 0
    var digits = 0
    var parts = 0
    for byte in text {
      if byte == UInt8(ascii: ".") {
        guard digits > 0, parts < 3 else { return nil }
        value = value << 8 | part
        parts += 1
        part = 0
        digits = 0
      } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
        part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
        digits += 1
        guard digits <= 3, part <= 255 else { return nil }
      } else {
        return nil
      }
    }
    guard digits > 0, parts == 3 else { return nil }
    return value << 8 | part
  }

  /// The IPv6 address written in `text` (RFC 4291 text: groups of up to four hex digits, one
  /// `::`, an optional dotted IPv4 tail), as two big-endian halves; nil for anything else.
  static func parseIPv6(_ text: [UInt8]) -> (high: UInt64, low: UInt64)? {
    guard text.count >= 2, text.count <= 45 else { return nil }
    let colon = UInt8(ascii: ":")
    var gap: Int?  // index in `groups` where "::" stands
    var groups: [UInt16] = []
    var index = 0
    if text[0] == colon {
      guard text[1] == colon else { return nil }
      gap = 0
      index = 2
    }
    while index < text.count {
      // One group (or the IPv4 tail), then ':' or '::' or the end.
      var end = index
      while end < text.count && text[end] != colon { end += 1 }
      let piece = text[index..<end]
      if piece.contains(UInt8(ascii: ".")) {
        guard end == text.count, let v4 = parseIPv4(piece) else { return nil }
        groups.append(UInt16(v4 >> 16))
        groups.append(UInt16(v4 & 0xffff))
        index = end
        break
      }
      guard !piece.isEmpty, piece.count <= 4 else { return nil }
      var group: UInt16 = 0
      for byte in piece {
        guard let digit = hexValue(byte) else { return nil }
        group = group << 4 | UInt16(digit)
      }
      groups.append(group)
      guard groups.count <= 8 else { return nil }
      index = end
      if index == text.count { break }
      index += 1  // the ':'
      if index < text.count && text[index] == colon {
        guard gap == nil else { return nil }
        gap = groups.count
        index += 1
      } else if index == text.count {
        return nil  // a trailing single ':'
      }
    }
    if let gap {
      guard groups.count <= 7 else { return nil }
      groups.insert(contentsOf: [UInt16](repeating: 0, count: 8 - groups.count), at: gap)
    }
    guard groups.count == 8 else { return nil }
    var high: UInt64 = 0
    var low: UInt64 = 0
    for i in 0..<4 {
      high = high << 16 | UInt64(groups[i])
      low = low << 16 | UInt64(groups[i + 4])
    }
    return (high, low)
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
}
