import ArgumentParser
import TutorialServers
import Twine

/// `twine hello`: the tutorial's HelloHD.
struct HelloCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hello",
    abstract: "Write \"Hello This is HD's Test protocol\" and close."
  )

  @OptionGroup var options: ServerOptions
  @OptionGroup var threading: ThreadOptions

  func validate() throws { try threading.validate(with: options) }

  func run() throws {
    if threading.threads != 1 {
      let counters = ConnectionCounters(stripes: threading.count)
      return try serveGroup(options, threads: threading.count, counters: counters) { home in
        Factory(HelloHD.self, counters: counters.stripe(home.index))
      }
    }
    try serve(Factory(HelloHD.self), options)
  }
}
