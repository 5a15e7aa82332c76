/// A string too long for its length prefix, refused by `sendString` (Twisted's `StringTooLongError`).
public struct StringTooLongError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The string's length, in bytes.
  public let length: Int
  /// The longest string the prefix can announce.
  public let maximum: Int

  /// Makes the error for a `length`-byte string whose prefix allows `maximum`.
  public init(length: Int, maximum: Int) {
    self.length = length
    self.maximum = maximum
  }

  /// `"string of N bytes is too long for its length prefix (at most M)"`.
  public var description: String { "string of \(length) bytes is too long for its length prefix (at most \(maximum))" }
}
