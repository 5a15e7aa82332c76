import TwineCore

/// D. J. Bernstein's netstrings (Twisted's `NetstringReceiver`): each string is sent as
/// its decimal length, `:`, the bytes, and `,` — `5:hello,`. Override
/// ``stringReceived(_:)``; send with ``sendString(_:)-(RawSpan)``.
///
/// Hostile input is refused without buffering it: the length is checked digit by digit,
/// so `1099511627776:` fails at its sixth digit with the default ``maxLength``; at most
/// ``maxLength`` bytes of a string are ever held. A malformed netstring — a length that is
/// empty, has a non-digit or a leading zero (`0` alone is fine), is over ``maxLength``, or a
/// string not followed by `,` — goes to ``FramingReceiver/framingError(_:)`` (over-long ones
/// through ``lengthLimitExceeded(_:)``), which by default closes the connection with
/// `.protocolError` and a message saying which; nothing after it is delivered.
open class NetstringReceiver: FramingReceiver {
  /// The longest string accepted, in bytes. Default 99999, as in Twisted: five digits. Raise it
  /// for bigger messages; memory per connection is bounded by it.
  public var maxLength = 99_999

  private enum State {
    case length
    case payload
    case comma
  }
  private var state = State.length
  /// The length read so far, and how many digits it had.
  private var declared = 0
  private var digits = 0
  /// The bytes of a string split across reads.
  private var payload: [UInt8] = []

  /// Makes a receiver.
  public required init() { super.init() }

  /// One string arrived. Borrowed (from the read, or from the buffer that joined a string
  /// split across reads), valid only during the call.
  open func stringReceived(_ string: RawSpan) {}

  /// The peer announced a string longer than ``maxLength``; `length` is the length read so
  /// far (its first digits only). The default reports `"netstring longer than N bytes"` to
  /// ``FramingReceiver/framingError(_:)``. Nothing is delivered after it either way.
  open func lengthLimitExceeded(_ length: Int) {
    framingError("netstring longer than \(maxLength) bytes")
  }

  /// Sends `string` as a netstring (two or three writes, no copy of `string`).
  public func sendString(_ string: RawSpan) {
    transport.write("\(string.byteCount):")
    transport.write(string)
    transport.write(Self.comma)
  }

  /// Sends the bytes of `string` as a netstring.
  public func sendString(_ string: [UInt8]) {
    string.withUnsafeBytes { sendString($0.bytes) }
  }

  /// Sends the UTF-8 bytes of `string` as a netstring.
  public func sendString(_ string: String) {
    var string = string
    string.withUTF8 { sendString(UnsafeRawBufferPointer($0).bytes) }
  }

  private static let comma: [UInt8] = [UInt8(ascii: ",")]

  // MARK: Parsing

  override var partialByteCount: Int { payload.count }

  override func parse(_ bytes: UnsafeRawBufferPointer) -> Int {
    let count = bytes.count
    var index = 0
    while index < count {
      if shouldStop { return index }
      switch state {
      case .length:
        let byte = bytes[index]
        index += 1
        if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
          if digits == 1 && declared == 0 {
            fail("netstring length has a leading zero")
            return index
          }
          let (tens, overflowed) = declared.multipliedReportingOverflow(by: 10)
          declared = overflowed ? .max : tens.addingReportingOverflow(Int(byte - UInt8(ascii: "0"))).partialValue
          digits += 1
          if declared > maxLength || declared < 0 {
            broken = true
            pending = []
            lengthLimitExceeded(declared < 0 ? .max : declared)
            return index
          }
        } else if byte == UInt8(ascii: ":") {
          guard digits > 0 else {
            fail("netstring length is empty")
            return index
          }
          if count - index > declared {
            // The whole string and its comma are in this read: hand it up in place.
            let end = index + declared
            guard bytes[end] == UInt8(ascii: ",") else {
              fail("netstring not terminated by ','")
              return end
            }
            let string = UnsafeRawBufferPointer(rebasing: bytes[index..<end])
            index = end + 1
            startNext()
            stringReceived(string.bytes)
          } else {
            state = declared == 0 ? .comma : .payload
          }
        } else {
          fail("netstring length must be decimal digits, got byte 0x\(String(byte, radix: 16))")
          return index
        }
      case .payload:
        let take = min(declared - payload.count, count - index)
        payload.append(contentsOf: bytes[index..<(index + take)])
        index += take
        if payload.count == declared { state = .comma }
      case .comma:
        guard bytes[index] == UInt8(ascii: ",") else {
          fail("netstring not terminated by ','")
          return index
        }
        index += 1
        var string: [UInt8] = []
        swap(&string, &payload)
        startNext()
        string.withUnsafeBytes { stringReceived($0.bytes) }
      }
    }
    return count
  }

  private func startNext() {
    state = .length
    declared = 0
    digits = 0
  }
}
