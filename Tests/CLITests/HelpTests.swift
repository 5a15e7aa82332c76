import Foundation
import Testing

/// `--help` output: exit 0 on stdout, naming the subcommands and options.
@Suite("twine --help")
struct HelpTests {
  static func help(_ arguments: [String]) throws -> String {
    let result = try ChildProcess.run(try TwineExecutable.path(), arguments)
    #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
    #expect(result.stderr == "")
    // Help text wraps at the terminal width: compare with whitespace runs made single spaces.
    let text = String(decoding: result.stdout, as: UTF8.self)
    return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
  }

  @Test("twine --help exits 0 and lists the echo and hello subcommands")
  func topLevelHelp() throws {
    let text = try Self.help(["--help"])
    #expect(text.contains("USAGE: twine <subcommand>"), "\(text)")
    #expect(text.contains("SUBCOMMANDS: echo "), "\(text)")
    #expect(text.contains(" hello "), "\(text)")
  }

  @Test("twine echo --help exits 0 and lists every echo option with its default")
  func echoHelp() throws {
    for arguments in [["echo", "--help"], ["help", "echo"]] {
      let text = try Self.help(arguments)
      #expect(text.contains("USAGE: twine echo"), "\(text)")
      for option in ["--port", "--interface", "--max-connections", "--log-level", "--help"] {
        #expect(text.contains(option), "\(arguments) does not mention \(option): \(text)")
      }
      #expect(text.contains("(default: 8025)"), "\(text)")
      #expect(text.contains("(default: 100)"), "\(text)")
      #expect(text.contains("(default: 127.0.0.1)"), "\(text)")
    }
  }

  @Test("twine hello --help exits 0 and lists the server options but not --max-connections")
  func helloHelp() throws {
    let text = try Self.help(["hello", "--help"])
    #expect(text.contains("USAGE: twine hello"), "\(text)")
    for option in ["--port", "--interface", "--log-level"] {
      #expect(text.contains(option), "missing \(option): \(text)")
    }
    #expect(!text.contains("--max-connections"))
  }

  @Test("twine with no subcommand prints the help, exits 0 and serves nothing")
  func noSubcommand() throws {
    let text = try Self.help([])
    #expect(text.contains("USAGE: twine <subcommand>"), "\(text)")
    #expect(!text.contains("listening on"))
  }
}
