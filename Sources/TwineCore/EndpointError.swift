/// Why an endpoint string (``ServerEndpoint/init(_:)``, ``ClientEndpoint/init(_:)``) cannot be used.
/// The text names the string and the part that is wrong.
public struct EndpointError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The whole string that was given.
  public let description: String
  /// The part that is wrong, as given (`"tcp"`, `"backlog=x"`, `"nope"`); empty for an empty string.
  public let part: String
  /// What is wrong with it.
  public let problem: String

  /// Makes an error about `part` of `description`.
  public init(_ description: String, part: String, problem: String) {
    self.description = "bad endpoint \"\(description)\": \(part.isEmpty ? "" : "\"\(part)\": ")\(problem)"
    self.part = part
    self.problem = problem
  }
}
