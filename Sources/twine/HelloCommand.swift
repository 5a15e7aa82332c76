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

  func run() throws {
    try serve(Factory(HelloHD.self), options)
  }
}
