/// The chat's one rule for what a user may make other users' terminals show, shared by
/// messages (where the rest is replaced) and nicks (where it is refused).
///
/// Replaced by `?`: every C0 control U+0000–U+001F (tab included), DEL U+007F, every C1
/// control U+0080–U+009F (CSI, OSC, NEL…), the bidi embeddings and overrides U+202A–U+202E
/// and the bidi isolates U+2066–U+2069; and each invalid UTF-8 sequence (a raw `0x9B`, a
/// truncated or overlong sequence, an encoded surrogate) as Unicode's "maximal subpart" rule
/// splits it, so a raw C1 byte becomes `?` like the encoded one.
public enum ChatText {
  /// True for a scalar the chat never relays: C0, DEL, C1, and the bidi controls
  /// U+202A–U+202E and U+2066–U+2069.
  public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069: true
    default: false
    }
  }

  /// `bytes` as UTF-8 with every control scalar (``isControl(_:)``) and every invalid
  /// UTF-8 sequence replaced by one `?`. Printable ASCII comes back unchanged without decoding.
  public static func clean(_ bytes: some Collection<UInt8>) -> [UInt8] {
    if bytes.allSatisfy({ (0x20...0x7E).contains($0) }) { return Array(bytes) }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var input = bytes.makeIterator()
    var decoder = UTF8()
    while true {
      switch decoder.decode(&input) {
      case .scalarValue(let scalar):
        if isControl(scalar) {
          out.append(UInt8(ascii: "?"))
        } else {
          UTF8.encode(scalar) { out.append($0) }
        }
      case .error:
        out.append(UInt8(ascii: "?"))
      case .emptyInput:
        return out
      }
    }
  }

  /// True when `bytes` is valid UTF-8 without a control scalar: what ``clean(_:)`` leaves unchanged.
  public static func isClean(_ bytes: some Collection<UInt8>) -> Bool {
    clean(bytes).elementsEqual(bytes)
  }
}
