import TwineCore

/// Strings framed by a big-endian unsigned length prefix of ``prefixSize`` bytes
/// (Twisted's `IntNStringReceiver`). Subclass ``Int32StringReceiver``,
/// ``Int16StringReceiver`` or ``Int8StringReceiver`` and override ``stringReceived(_:)``;
/// send with ``sendString(_:)-(RawSpan)``.
///
/// A string lying wholly inside one read is handed up in place; one split across reads is
/// joined in a buffer of at most ``maxLength`` bytes. A prefix announcing more than
/// ``maxLength`` goes to ``lengthLimitExceeded(_:)`` before any of the string is read; by
/// default that closes the connection with `.protocolError`, and nothing after it is delivered.
open class IntNStringReceiver: FramingReceiver {
  /// Bytes in the length prefix: 1, 2, 4 or 8.
  public let prefixSize: Int

  /// The longest string accepted, in bytes. Default 99999, as in Twisted (an 8-bit prefix
  /// cannot announce more than 255 anyway); memory per connection is bounded by it.
  public var maxLength = 99_999

  /// The longest string the prefix can announce: 2^(8 × ``prefixSize``) − 1.
  public var prefixLimit: Int { prefixSize >= 8 ? Int.max : (1 << (8 * prefixSize)) - 1 }

  /// Prefix bytes read so far of a prefix split across reads, and their value.
  private var headerBytes = 0
  private var header: UInt64 = 0
  /// The length of the string being joined across reads, while joining.
  private var expected: Int?
  private var payload: [UInt8] = []

  /// Makes a receiver with a 4-byte prefix.
  public required init() {
    prefixSize = 4
    super.init()
  }

  /// Makes a receiver with a `prefixSize`-byte prefix (1, 2, 4 or 8).
  public init(prefixSize: Int) {
    precondition([1, 2, 4, 8].contains(prefixSize), "prefixSize must be 1, 2, 4 or 8")
    self.prefixSize = prefixSize
    super.init()
  }

  /// One string arrived. Borrowed, valid only during the call.
  open func stringReceived(_ string: RawSpan) {}

  /// The peer announced a string of `length` bytes, more than ``maxLength``. The default
  /// reports `"string of L bytes is longer than N"` to ``FramingReceiver/framingError(_:)``.
  /// Nothing is delivered after it either way: the stream cannot be re-synchronised.
  open func lengthLimitExceeded(_ length: Int) {
    framingError("string of \(length) bytes is longer than \(maxLength)")
  }

  /// Sends `string` after its length prefix: one write for short strings, two otherwise,
  /// never a heap copy. Throws, sending nothing, if the prefix cannot announce its length.
  public func sendString(_ string: RawSpan) throws(StringTooLongError) {
    try check(string.byteCount)
    writeFrame(string)
  }

  /// Sends the bytes of `string` after its length prefix; throws if it is too long for the prefix.
  public func sendString(_ string: [UInt8]) throws(StringTooLongError) {
    try check(string.count)
    string.withUnsafeBytes { writeFrame($0.bytes) }
  }

  /// Sends the UTF-8 bytes of `string` after its length prefix; throws if it is too long for the prefix.
  public func sendString(_ string: String) throws(StringTooLongError) {
    var string = string
    try check(string.utf8.count)
    string.withUTF8 { writeFrame(UnsafeRawBufferPointer($0).bytes) }
  }

  private func check(_ length: Int) throws(StringTooLongError) {
    guard length <= prefixLimit else { throw StringTooLongError(length: length, maximum: prefixLimit) }
  }

  private func writeFrame(_ string: RawSpan) {
    let length = string.byteCount
    let total = prefixSize + length
    let joined = total <= 2048
    withUnsafeTemporaryAllocation(byteCount: joined ? total : prefixSize, alignment: 1) { buffer in
      var value = UInt64(length)
      for index in stride(from: prefixSize - 1, through: 0, by: -1) {
        buffer[index] = UInt8(truncatingIfNeeded: value)
        value >>= 8
      }
      if joined {
        string.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[prefixSize...]).copyMemory(from: $0) }
        transport.write(UnsafeRawBufferPointer(buffer).bytes)
      } else {
        transport.write(UnsafeRawBufferPointer(buffer).bytes)
        transport.write(string)
      }
    }
  }

  // MARK: Parsing

  override var partialByteCount: Int { payload.count + headerBytes }

  override func parse(_ bytes: UnsafeRawBufferPointer) -> Int {
    let count = bytes.count
    var index = 0
    while index < count {
      if shouldStop { return index }
      if let expected {
        let take = min(expected - payload.count, count - index)
        payload.append(contentsOf: bytes[index..<(index + take)])
        index += take
        if payload.count == expected {
          self.expected = nil
          var string: [UInt8] = []
          swap(&string, &payload)
          string.withUnsafeBytes { stringReceived($0.bytes) }
        }
        continue
      }
      var length: UInt64
      if headerBytes == 0 && count - index >= prefixSize {
        length = 0
        for offset in 0..<prefixSize { length = length << 8 | UInt64(bytes[index + offset]) }
        index += prefixSize
      } else {
        header = header << 8 | UInt64(bytes[index])
        headerBytes += 1
        index += 1
        guard headerBytes == prefixSize else { continue }
        length = header
        header = 0
        headerBytes = 0
      }
      guard length <= UInt64(max(0, maxLength)) else {
        broken = true
        pending = []
        lengthLimitExceeded(Int(clamping: length))
        return index
      }
      let size = Int(length)
      if count - index >= size {
        let string = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + size)])
        index += size
        stringReceived(string.bytes)
      } else {
        expected = size
      }
    }
    return count
  }
}

/// Strings after a 4-byte big-endian length (Twisted's `Int32StringReceiver`).
open class Int32StringReceiver: IntNStringReceiver {
  /// Makes a receiver with a 4-byte prefix.
  public required init() { super.init(prefixSize: 4) }
}

/// Strings after a 2-byte big-endian length (Twisted's `Int16StringReceiver`).
open class Int16StringReceiver: IntNStringReceiver {
  /// Makes a receiver with a 2-byte prefix.
  public required init() { super.init(prefixSize: 2) }
}

/// Strings after a 1-byte length (Twisted's `Int8StringReceiver`).
open class Int8StringReceiver: IntNStringReceiver {
  /// Makes a receiver with a 1-byte prefix.
  public required init() { super.init(prefixSize: 1) }
}
