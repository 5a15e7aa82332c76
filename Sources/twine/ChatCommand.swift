import ArgumentParser
import TutorialServers

/// `twine chat`: the classic Twisted chat server.
struct ChatCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "chat",
    abstract: "A line chat: each line goes to everyone else as '<nick> line'; /nick NAME renames, /quit leaves."
  )

  @OptionGroup var options: ServerOptions

  @Option(help: "Drop a user after this many seconds without input (0: never).")
  var idleTimeout: Double = 0

  @Option(help: "The longest line, in bytes; a longer one drops its sender.")
  var maxLineLength: Int = 4096

  @Option(help: "Unread output a user may have queued, in bytes, before being dropped as too slow.")
  var maxPendingBytes: Int = 256 << 10

  func validate() throws {
    guard idleTimeout >= 0 else { throw ValidationError("--idle-timeout must be 0 or more") }
    guard maxLineLength > 0 else { throw ValidationError("--max-line-length must be at least 1") }
    guard maxPendingBytes > 0 else { throw ValidationError("--max-pending-bytes must be at least 1") }
  }

  func run() throws {
    let factory = ChatFactory(
      maxLineLength: maxLineLength, maxPendingBytes: maxPendingBytes,
      idleTimeout: idleTimeout > 0 ? idleTimeout : nil)
    try serve(factory, options)
  }
}
