/// The parameters a C host passes with a factory name: `"key=value,key=value"`.
///
/// A maker reads the keys it knows; ``FactoryRegistry`` then rejects any key left
/// unread, so a typo in C is an error (`TWINE_EINVAL`), not a silent default.
public struct FactoryParameters: Sendable {
  /// Why parameters were rejected; the text is what `twine_last_error()` shows.
  public struct Invalid: Error, Sendable, CustomStringConvertible {
    /// What was wrong, e.g. `max_connections must be an integer in 0...1000000, not "x"`.
    public let description: String
    /// Makes the error with its message.
    public init(_ description: String) { self.description = description }
  }

  private let values: [String: String]
  private var read: Set<String> = []

  /// Parses `text`: empty, or comma-separated `key=value` pairs (keys unique, not empty).
  public init(parsing text: String) throws(Invalid) {
    var values: [String: String] = [:]
    for pair in text.split(separator: ",", omittingEmptySubsequences: true) {
      guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
        throw Invalid("malformed parameter \"\(pair)\" (expected key=value)")
      }
      let key = String(pair[..<equals]).trimmingSpaces
      guard values[key] == nil else { throw Invalid("parameter \(key) given twice") }
      values[key] = String(pair[pair.index(after: equals)...]).trimmingSpaces
    }
    self.values = values
  }

  /// The integer under `key` (or `defaultValue` when absent); throws if it is not an integer in `range`.
  public mutating func integer(_ key: String, default defaultValue: Int, in range: ClosedRange<Int>) throws(Invalid)
    -> Int
  {
    read.insert(key)
    guard let text = values[key] else { return defaultValue }
    guard let value = Int(text), range.contains(value) else {
      throw Invalid("\(key) must be an integer in \(range.lowerBound)...\(range.upperBound), not \"\(text)\"")
    }
    return value
  }

  /// The text under `key`, or `defaultValue` when absent.
  public mutating func string(_ key: String, default defaultValue: String) -> String {
    read.insert(key)
    return values[key] ?? defaultValue
  }

  /// Keys given but never read, sorted.
  var unread: [String] { values.keys.filter { !read.contains($0) }.sorted() }
}

extension String {
  fileprivate var trimmingSpaces: String {
    String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
  }
}
