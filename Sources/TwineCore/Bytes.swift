/// Copies and text out of the bytes a protocol is lent in `dataReceived(_:)`.
extension RawSpan {
  /// A copy of the viewed bytes, for keeping past the call that lent the view.
  public var bytes: [UInt8] {
    withUnsafeBytes { Array($0) }
  }

  /// The viewed bytes decoded as UTF-8 (invalid sequences repaired).
  public var utf8String: String {
    withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
  }
}
