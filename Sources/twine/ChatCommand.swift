import ArgumentParser
import TutorialServers

/// `twine chat`: the classic Twisted chat server.
struct ChatCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "chat",
    abstract: "A line chat: each line goes to everyone else as '<nick> line'; /nick NAME renames, /quit leaves."
  )

  @OptionGroup var options: ServerOptions
  @OptionGroup var threading: ThreadOptions

  // `.unconditional`: `--line-timeout -1` is a value to refuse with its range, not a missing value.

  @Option(parsing: .unconditional, help: "Drop a user after this many seconds without input (0: never).")
  var idleTimeout: Double = 0

  @Option(parsing: .unconditional, help: "The longest line, in bytes; a longer one drops its sender.")
  var maxLineLength: Int = 4096

  @Option(
    parsing: .unconditional,
    help: """
      Unread output a user may have queued, in bytes, before being dropped as too slow. \
      Past an eighth of it, senders filling that user's queue are slowed to its pace.
      """)
  var maxPendingBytes: Int = 1 << 20

  @Option(
    parsing: .unconditional,
    help: "Drop a user whose output is backed up and who has read nothing for this many seconds.")
  var stallTimeout: Double = 10

  @Option(parsing: .unconditional, help: "Drop a user whose line does not end within this many seconds.")
  var lineTimeout: Double = 30

  @Option(
    parsing: .unconditional,
    help: "Users served at once; the next is told 'Too many connections, try later' and closed.")
  var maxConnections: Int = 1000

  func validate() throws {
    guard idleTimeout >= 0, idleTimeout.isFinite else {
      throw ValidationError("--idle-timeout must be 0 (never) or a finite number of seconds, not \(idleTimeout)")
    }
    guard maxLineLength > 0 else { throw ValidationError("--max-line-length must be at least 1, not \(maxLineLength)") }
    guard maxPendingBytes > 0 else {
      throw ValidationError("--max-pending-bytes must be at least 1, not \(maxPendingBytes)")
    }
    guard stallTimeout > 0, stallTimeout.isFinite else {
      throw ValidationError("--stall-timeout must be more than 0 seconds (and finite), not \(stallTimeout)")
    }
    guard lineTimeout > 0, lineTimeout.isFinite else {
      throw ValidationError("--line-timeout must be more than 0 seconds (and finite), not \(lineTimeout)")
    }
    guard maxConnections >= 1 else {
      throw ValidationError("--max-connections must be at least 1, not \(maxConnections)")
    }
    try threading.validate(with: options)
  }

  func run() throws {
    if threading.threads != 1 { return try runGroup() }
    let factory = ChatFactory(
      maxLineLength: maxLineLength, maxPendingBytes: maxPendingBytes,
      idleTimeout: idleTimeout > 0 ? idleTimeout : nil, stallTimeout: stallTimeout, lineTimeout: lineTimeout,
      maxConnections: maxConnections)
    try serve(factory, options)
  }
}
