import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Startup failures: a taken port, a bad address, a wrong command line.
@Suite("twine startup errors")
struct StartupErrorTests {
  static func runTwine(_ arguments: [String]) throws -> (termination: Termination, stdout: String, stderr: String) {
    let result = try ChildProcess.run(try TwineExecutable.path(), arguments)
    return (result.termination, String(decoding: result.stdout, as: UTF8.self), result.stderr)
  }

  @Test(
    "a second server on a port twine already listens on exits non-zero with one line on stderr",
    arguments: ["echo", "hello"])
  func portTakenByTwine(command: String) throws {
    let first = try TwineServer(["echo", "--port", "0"])
    defer { first.kill() }
    let second = try Self.runTwine([command, "--port", "\(first.port)"])
    #expect(second.termination.isFailure)
    #expect(second.termination != .exited(0))
    #expect(second.stderr == "twine: cannot listen on 127.0.0.1:\(first.port): Address already in use\n")
    #expect(second.stdout == "", "nothing may claim to listen")
    // The first server is unharmed.
    let client = try TCPClient.connect(port: first.port)
    #expect(try client.echo("first still serves") == "first still serves")
  }

  @Test(
    "a port held by another program's socket makes twine exit non-zero with one line on stderr",
    arguments: [true, false])
  func portTakenByPlainSocket(listening: Bool) throws {
    let holder = try PlainListener(listen: listening)
    let result = try Self.runTwine(["echo", "--port", "\(holder.port)"])
    #expect(result.termination.isFailure)
    let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines.count == 2 && lines[1].isEmpty, "exactly one line: \(result.stderr.debugDescription)")
    #expect(result.stderr.contains("Address already in use"))
    #expect(result.stderr.contains("127.0.0.1:\(holder.port)"))
    #expect(result.stdout == "")
  }

  @Test(
    "a wrong command line exits non-zero with the usage on stderr and listens on nothing",
    arguments: [
      ["echo", "--bogus"],
      ["echo", "--port", "70000"],
      ["echo", "--port", "-1"],
      ["echo", "--port", "abc"],
      ["echo", "--port"],
      ["echo", "--max-connections", "-1"],
      ["echo", "--max-connections", "many"],
      ["echo", "--log-level", "loud"],
      ["hello", "--bogus"],
      ["hello", "--max-connections", "3"],
      ["bogus"],
      ["--bogus"],
    ])
  func badCommandLine(arguments: [String]) throws {
    let result = try Self.runTwine(arguments)
    #expect(result.termination.isFailure)
    // (Not checked: the exact status. It is ArgumentParser's 64, except under LeakSanitizer,
    // which turns the parser's own small leak on a bad value into exit status 1.)
    #expect(result.stderr.hasPrefix("Error: "), "stderr: \(result.stderr)")
    #expect(result.stderr.contains("Usage: twine"), "stderr: \(result.stderr)")
    #expect(result.stdout == "", "nothing may listen: \(result.stdout)")
  }

  @Test("an interface that is not a numeric address exits non-zero with one line on stderr")
  func badInterface() throws {
    let result = try Self.runTwine(["echo", "--port", "0", "--interface", "not-an-ip"])
    #expect(result.termination.isFailure)
    #expect(result.stderr == "twine: not a numeric IP address: not-an-ip\n")
    #expect(result.stdout == "")
  }
}
