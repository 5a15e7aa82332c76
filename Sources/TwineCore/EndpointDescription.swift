/// An endpoint string split the way Twisted's `serverFromString` splits it: `:` separates
/// the parts, the first `=` in a part separates a keyword from its value, and a backslash
/// makes the next character literal (`unix:/tmp/a\:b`, `tcp:80:interface=\:\:1`).
struct EndpointDescription {
  /// The string as given.
  let text: String
  /// The endpoint's type: the first part (`tcp`, `unix`, …).
  let type: String
  /// The positional parts after the type, in order.
  var positional: [String]
  /// The keyword parts, in order (a repeated keyword is an error when bound).
  var keywords: [(key: String, value: String)]
  /// The text after the type's `:`, unescaped for nothing: what `haproxy:` wraps.
  let rest: String

  init(_ text: String) throws(EndpointError) {
    self.text = text
    var parts: [[String]] = [[]]  // each part: [value] or [key, value]
    var current = ""
    var afterEquals = false
    var escaped = false
    var restStart: String.Index?
    var index = text.startIndex
    while index < text.endIndex {
      let character = text[index]
      if escaped {
        current.append(character)
        escaped = false
      } else if character == "\\" {
        escaped = true
      } else if character == ":" {
        parts[parts.count - 1].append(current)
        parts.append([])
        current = ""
        afterEquals = false
        if restStart == nil { restStart = text.index(after: index) }
      } else if character == "=" && !afterEquals {
        parts[parts.count - 1].append(current)
        current = ""
        afterEquals = true
      } else {
        current.append(character)
      }
      index = text.index(after: index)
    }
    guard !escaped else { throw EndpointError(text, part: "\\", problem: "a backslash at the end escapes nothing") }
    parts[parts.count - 1].append(current)
    rest = restStart.map { String(text[$0...]) } ?? ""
    guard let first = parts.first, first.count == 1, !first[0].isEmpty else {
      throw EndpointError(text, part: "", problem: "no endpoint type (tcp, tcp6, unix, ssl, udp, systemd, haproxy)")
    }
    type = first[0]
    positional = []
    keywords = []
    for part in parts.dropFirst() {
      if part.count == 1 {
        positional.append(part[0])
      } else {
        keywords.append((part[0], part[1]))
      }
    }
  }

  /// Binds the parts to `names` as Python binds arguments (positional first, then by
  /// keyword); `required` must all be given. Throws for an unknown keyword, a repeated
  /// one, or too many positional parts.
  func bind(_ names: [String], required: Set<String>) throws(EndpointError) -> [String: String] {
    var bound: [String: String] = [:]
    guard positional.count <= names.count else {
      throw EndpointError(
        text, part: positional[names.count],
        problem: "too many parts for \(type) (it takes \(names.joined(separator: ", ")))")
    }
    for (name, value) in zip(names, positional) { bound[name] = value }
    for (key, value) in keywords {
      guard names.contains(key) else {
        throw EndpointError(
          text, part: "\(key)=\(value)",
          problem: "\(type) has no parameter \"\(key)\" (it takes \(names.joined(separator: ", ")))")
      }
      guard bound[key] == nil else { throw EndpointError(text, part: "\(key)=\(value)", problem: "\(key) given twice") }
      bound[key] = value
    }
    for name in names where required.contains(name) && bound[name] == nil {
      throw EndpointError(text, part: type, problem: "\(type) needs \(name)")
    }
    return bound
  }

  /// `value` of `key` as an integer in `range`.
  func integer(_ key: String, _ value: String, in range: ClosedRange<Int>) throws(EndpointError) -> Int {
    guard let number = Int(value), range.contains(number) else {
      throw EndpointError(
        text, part: "\(key)=\(value)",
        problem: "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
    }
    return number
  }

  /// `value` of `key` as seconds: a finite number above 0.
  func seconds(_ key: String, _ value: String) throws(EndpointError) -> Double {
    guard let number = Double(value), number.isFinite, number > 0 else {
      throw EndpointError(text, part: "\(key)=\(value)", problem: "\(key) must be a number of seconds above 0")
    }
    return number
  }
}
