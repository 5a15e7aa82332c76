/// Reads a PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) from the
/// first bytes of a connection, however they are split across reads.
///
/// Feed each read to `parse(_:)` until it returns something other than
/// ``Result/needMore``; the parser is spent after that. It holds at most ``maxLength``
/// bytes: a version 1 line longer than 107 bytes, or a version 2 header longer than
/// ``maxLength``, is ``Result/invalid(_:)`` as soon as that is known, and so is a first
/// byte that begins neither form (a peer that sends no header).
///
/// ```swift
/// var parser = ProxyHeaderParser()
/// if case .header(let header, let consumed) = parser.parse(bytes) {
///   print(header.source, "sent", bytes.count - consumed, "bytes after the header")
/// }
/// ```
public struct ProxyHeaderParser: Sendable {
  /// What `parse(_:)` found so far.
  public enum Result: Sendable, Hashable {
    /// The header is not complete yet: feed the next read.
    case needMore
    /// The header, and how many bytes of the last input belonged to it (the rest is the
    /// connection's own data).
    case header(ProxyHeader, consumed: Int)
    /// Not a valid header; the text says what is wrong.
    case invalid(String)
  }

  /// Version 2's 12-byte signature, `\r\n\r\n\0\r\nQUIT\n`.
  public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
  /// The longest version 1 line the specification allows, `\r\n` included.
  public static let maxVersion1Length = 107
  /// The smallest ``maxLength`` accepted: a version 2 header with two UNIX-domain addresses.
  public static let minimumMaxLength = 16 + 216

  /// The longest header accepted, in bytes (a version 2 header with many TLVs can be long).
  public let maxLength: Int
  /// The bytes of the header read so far.
  private var held: [UInt8] = []

  /// Makes a parser that accepts headers of up to `maxLength` bytes (raised to ``minimumMaxLength``).
  public init(maxLength: Int = 4096) {
    self.maxLength = max(maxLength, Self.minimumMaxLength)
  }

  /// Takes the next bytes of the connection.
  public mutating func parse(_ data: RawSpan) -> Result {
    data.withUnsafeBytes { parse($0) }
  }

  /// Takes the next bytes of the connection.
  public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> Result {
    var offset = 0
    while true {
      switch examine() {
      case .want(let total):
        guard offset < bytes.count else { return .needMore }
        let take = min(bytes.count - offset, total - held.count)
        held.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
        offset += take
      case .done(let header, let length):
        // Whatever `held` has past the header came from this input (an earlier one would have ended it).
        return .header(header, consumed: offset - (held.count - length))
      case .invalid(let why):
        return .invalid(why)
      }
    }
  }

  /// The whole header at the start of `bytes`, for one-shot use and tests.
  public static func parse(_ bytes: [UInt8], maxLength: Int = 4096) -> Result {
    var parser = ProxyHeaderParser(maxLength: maxLength)
    return bytes.withUnsafeBytes { parser.parse($0) }
  }

  private enum Step {
    case want(Int)
    case done(ProxyHeader, length: Int)
    case invalid(String)
  }

  private static let version1Prefix = Array("PROXY ".utf8)

  /// What the held bytes make: how many are needed in all, a header, or an error.
  private func examine() -> Step {
    guard let first = held.first else { return .want(1) }
    if first == Self.version1Prefix[0] { return examineVersion1() }
    if first == Self.signature[0] { return examineVersion2() }
    return .invalid("no PROXY protocol header (the connection starts with byte \(first))")
  }

  // MARK: Version 1

  private func examineVersion1() -> Step {
    let prefix = min(held.count, Self.version1Prefix.count)
    guard held[..<prefix].elementsEqual(Self.version1Prefix[..<prefix]) else {
      return .invalid("no PROXY protocol header (the connection does not start with \"PROXY \" or the v2 signature)")
    }
    guard let newline = held.firstIndex(of: 0x0A) else {
      if held.count >= Self.maxVersion1Length {
        return .invalid("PROXY v1 header longer than \(Self.maxVersion1Length) bytes")
      }
      return .want(Self.maxVersion1Length)
    }
    guard newline > 0, held[newline - 1] == 0x0D else { return .invalid("PROXY v1 header ends without \\r\\n") }
    if let header = Self.version1Header(held[..<(newline - 1)]) { return .done(header, length: newline + 1) }
    return .invalid("malformed PROXY v1 header \"\(String(decoding: held[..<(newline - 1)], as: UTF8.self))\"")
  }

  /// The header in `line` (without its `\r\n`), or nil when a part is malformed.
  private static func version1Header(_ line: ArraySlice<UInt8>) -> ProxyHeader? {
    let fields = line.split(separator: 0x20, omittingEmptySubsequences: false)
    guard fields.count >= 2, fields[0].elementsEqual("PROXY".utf8) else { return nil }
    if fields[1].elementsEqual("UNKNOWN".utf8) {
      return ProxyHeader(version: .v1, command: .proxy, source: nil, destination: nil)
    }
    guard fields.count == 6, let sourcePort = port(fields[4]), let destinationPort = port(fields[5]) else { return nil }
    if fields[1].elementsEqual("TCP4".utf8) {
      guard let source = SocketAddress.parseIPv4(fields[2]), let destination = SocketAddress.parseIPv4(fields[3]) else {
        return nil
      }
      return ProxyHeader(
        version: .v1, command: .proxy, source: SocketAddress(.ipv4(source), port: sourcePort),
        destination: SocketAddress(.ipv4(destination), port: destinationPort))
    }
    if fields[1].elementsEqual("TCP6".utf8) {
      guard let source = SocketAddress.parseIPv6(Array(fields[2])),
        let destination = SocketAddress.parseIPv6(Array(fields[3]))
      else { return nil }
      return ProxyHeader(
        version: .v1, command: .proxy,
        source: SocketAddress(.ipv6(high: source.high, low: source.low, scopeID: 0), port: sourcePort),
        destination: SocketAddress(
          .ipv6(high: destination.high, low: destination.low, scopeID: 0), port: destinationPort))
    }
    return nil
  }

  /// A decimal port 0...65535 with no sign and no leading zero.
  private static func port(_ text: ArraySlice<UInt8>) -> Int? {
    guard !text.isEmpty, text.count <= 5, text.first != UInt8(ascii: "0") || text.count == 1 else { return nil }
    var value = 0
    for byte in text {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    return value <= 65535 ? value : nil
  }

  // MARK: Version 2

  private func examineVersion2() -> Step {
    let prefix = min(held.count, Self.signature.count)
    guard held[..<prefix].elementsEqual(Self.signature[..<prefix]) else {
      return .invalid("no PROXY protocol header (the connection does not start with \"PROXY \" or the v2 signature)")
    }
    guard held.count >= 16 else { return .want(16) }
    guard held[12] >> 4 == 2 else { return .invalid("PROXY v2 header with version \(held[12] >> 4)") }
    let total = 16 + (Int(held[14]) << 8 | Int(held[15]))
    guard total <= maxLength else {
      return .invalid("PROXY v2 header of \(total) bytes, more than the \(maxLength) allowed")
    }
    guard held.count >= total else { return .want(total) }
    switch Self.version2Header(held[..<total]) {
    case .success(let header): return .done(header, length: total)
    case .failure(let error): return .invalid(error.why)
    }
  }

  private struct Malformed: Error {
    let why: String
  }

  /// The header in `bytes` (exactly one whole version 2 header), or why it is malformed.
  private static func version2Header(_ bytes: ArraySlice<UInt8>) -> Swift.Result<ProxyHeader, Malformed> {
    let base = bytes.startIndex
    let command: ProxyHeader.Command
    switch bytes[base + 12] & 0x0F {
    case 0: command = .local
    case 1: command = .proxy
    case let other: return .failure(Malformed(why: "PROXY v2 header with unknown command \(other)"))
    }
    let family = bytes[base + 13] >> 4
    guard bytes[base + 13] & 0x0F <= 2 else {
      return .failure(Malformed(why: "PROXY v2 header with unknown transport \(bytes[base + 13] & 0x0F)"))
    }
    let body = bytes[(base + 16)...]
    let addressLength: Int
    switch family {
    case 0: addressLength = 0
    case 1: addressLength = 12
    case 2: addressLength = 36
    case 3: addressLength = 216
    default: return .failure(Malformed(why: "PROXY v2 header with unknown address family \(family)"))
    }
    // LOCAL: the receiver skips the whole block, addresses and TLVs alike.
    if command == .local { return .success(ProxyHeader(version: .v2, command: .local, source: nil, destination: nil)) }
    guard body.count >= addressLength else {
      return .failure(
        Malformed(why: "PROXY v2 header too short for its addresses (\(body.count) of \(addressLength) bytes)"))
    }
    let start = body.startIndex
    func number(_ at: Int, _ count: Int) -> UInt64 {
      var value: UInt64 = 0
      for index in at..<(at + count) { value = value << 8 | UInt64(body[index]) }
      return value
    }
    var source: SocketAddress?
    var destination: SocketAddress?
    switch family {
    case 1:
      source = SocketAddress(.ipv4(UInt32(number(start, 4))), port: Int(number(start + 8, 2)))
      destination = SocketAddress(.ipv4(UInt32(number(start + 4, 4))), port: Int(number(start + 10, 2)))
    case 2:
      source = SocketAddress(
        .ipv6(high: number(start, 8), low: number(start + 8, 8), scopeID: 0), port: Int(number(start + 32, 2)))
      destination = SocketAddress(
        .ipv6(high: number(start + 16, 8), low: number(start + 24, 8), scopeID: 0), port: Int(number(start + 34, 2)))
    case 3:
      func path(_ at: Int) -> String {
        let field = body[at..<(at + 108)]
        return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
      }
      source = SocketAddress(.unix(path: path(start)), port: 0)
      destination = SocketAddress(.unix(path: path(start + 108)), port: 0)
    default:
      break
    }
    var tlvs: [ProxyHeader.TLV] = []
    var index = start + addressLength
    while index < body.endIndex {
      guard body.endIndex - index >= 3 else {
        return .failure(Malformed(why: "PROXY v2 header ends inside a TLV's type and length"))
      }
      let length = Int(number(index + 1, 2))
      guard body.endIndex - index - 3 >= length else {
        return .failure(Malformed(why: "PROXY v2 TLV of \(length) bytes runs past the header"))
      }
      tlvs.append(ProxyHeader.TLV(type: body[index], value: Array(body[(index + 3)..<(index + 3 + length)])))
      index += 3 + length
    }
    return .success(ProxyHeader(version: .v2, command: .proxy, source: source, destination: destination, tlvs: tlvs))
  }
}
