import ArgumentParser
import Twine

/// `--threads N`: how many reactors serve, each on its own thread (a ``ReactorGroup``).
struct ThreadOptions: ParsableArguments {
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Reactors, each on its own thread with its own event loop (0: one per core); connections stay on the one that accepted them.",
      valueName: "n"))
  var threads: Int = 1

  /// The number of reactors to start: `--threads`, or one per core for 0.
  var count: Int { threads == 0 ? ReactorGroup.coreCount : threads }

  func validate() throws {
    guard threads >= 0 else { throw ValidationError("--threads must be 0 (one per core) or more, not \(threads)") }
  }

  /// The server flags a reactor group does not serve yet (they work on one reactor): a usage error naming them.
  func validate(with options: ServerOptions) throws {
    guard threads != 1 else { return }
    let single = [
      ("--listen", !options.listen.isEmpty), ("--metrics", options.metrics != nil),
      ("--control", options.lifecycle.control != nil), ("--takeover", options.lifecycle.takeover != nil),
    ].filter(\.1).map(\.0)
    guard single.isEmpty else {
      let verb = single.count == 1 ? "works" : "work"
      throw ValidationError("\(single.joined(separator: ", ")) \(verb) on one reactor only: leave --threads at 1")
    }
  }
}
