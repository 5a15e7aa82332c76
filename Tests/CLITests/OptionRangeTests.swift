import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Every numeric option of echo and hello (and chat's --port) is range-checked, negative
/// numbers included in both spellings (`--port -1` and `--port=-1`).
@Suite("twine numeric option ranges")
struct OptionRangeTests {
  @Test(
    "an out-of-range number exits non-zero with the range, the value given and the usage",
    arguments: [
      (["echo", "--max-connections", "0"], "--max-connections must be at least 1, not 0 (0 would refuse everyone)"),
      (["echo", "--max-connections", "-5"], "--max-connections must be at least 1, not -5"),
      (["echo", "--max-connections=-5"], "--max-connections must be at least 1, not -5"),
      (["echo", "--port", "-1"], "--port must be between 0 and 65535, not -1"),
      (["echo", "--port=-1"], "--port must be between 0 and 65535, not -1"),
      (["echo", "--port", "65536"], "--port must be between 0 and 65535, not 65536"),
      (["hello", "--port", "-1"], "--port must be between 0 and 65535, not -1"),
      (["hello", "--port=70000"], "--port must be between 0 and 65535, not 70000"),
      (["chat", "--port", "-1"], "--port must be between 0 and 65535, not -1"),
      (["echo", "--udp", "--port", "-2"], "--port must be between 0 and 65535, not -2"),
      (["echo", "--rate-limit", "0"], "--rate-limit must be between 1 and 2147483647 bytes per second, not 0"),
      (["echo", "--rate-limit", "-1"], "--rate-limit must be between 1 and 2147483647 bytes per second, not -1"),
      (
        ["echo", "--rate-limit=2147483648"],
        "--rate-limit must be between 1 and 2147483647 bytes per second, not 2147483648"
      ),
      (
        ["echo", "--total-rate-limit", "-100"],
        "--total-rate-limit must be between 1 and 2147483647 bytes per second, not -100"
      ),
    ])
  func outOfRange(arguments: [String], message: String) throws {
    let result = try ChildProcess.run(try TwineExecutable.path(), arguments)
    #expect(result.termination.isFailure)
    #expect(result.stderr.hasPrefix("Error: \(message)\n"), "stderr: \(result.stderr)")
    #expect(result.stderr.contains("Usage: twine"), "stderr: \(result.stderr)")
    #expect(!result.stderr.contains("Missing value"), "stderr: \(result.stderr)")
    #expect(result.stdout.isEmpty, "nothing may listen: \(String(decoding: result.stdout, as: UTF8.self))")
  }

  @Test("the edges of each range are accepted: --max-connections 1 serves one client and refuses the next")
  func edgesAccepted() throws {
    let server = try TwineServer([
      "echo", "--port", "0", "--max-connections", "1", "--rate-limit", "2147483647", "--total-rate-limit", "1000000",
    ])
    defer { server.kill() }
    let first = try TCPClient.connect(port: server.port)
    #expect(try first.echo("one") == "one")
    let second = try TCPClient.connect(port: server.port)
    let refused = try second.readToEnd()
    #expect(String(decoding: refused.bytes, as: UTF8.self) == "Too many connections, try later")
  }
}
