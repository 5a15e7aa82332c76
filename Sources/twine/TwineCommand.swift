import ArgumentParser

/// `twine`: the tutorial's servers on Twine.
@main
struct TwineCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "twine",
    abstract: "The Twisted tutorial's servers on Twine (Swift on libevent).",
    subcommands: [EchoCommand.self, HelloCommand.self, ChatCommand.self]
  )
}
