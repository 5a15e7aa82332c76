import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --async`: the counting Echo on the async API, same limit, text and flags.
@Suite("twine echo --async")
struct AsyncEchoCommandTests {
  @Test("echoes, refuses past --max-connections with the exact text, stops on SIGTERM with its counts")
  func echoesAndRefuses() throws {
    let server = try TwineServer(["echo", "--async", "--port", "0", "--max-connections", "2"])
    defer { server.kill() }
    let first = try TCPClient.connect(port: server.port)
    let second = try TCPClient.connect(port: server.port)
    #expect(try first.echo("one") == "one")
    #expect(try second.echo(String(repeating: "x", count: 100_000)) == String(repeating: "x", count: 100_000))
    let third = try TCPClient.connect(port: server.port)
    let refused = try third.readToEnd()
    #expect(refused.bytes == Array("Too many connections, try later".utf8), "got \(printable(refused.bytes))")
    #expect(refused.end == .eof)
    third.close()
    for client in [first, second] {
      client.shutdownWrite()
      _ = try client.readToEnd()
      client.close()
    }
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("accepted=3"), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("refused=1"), "stderr: \(server.stderrText)")
  }

  @Test("--async with --udp or a rate limit is a usage error")
  func refusesFlagsItCannotServe() throws {
    for flags in [["--udp"], ["--rate-limit", "1000"]] {
      let result = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--async"] + flags)
      #expect(result.termination.isFailure)
      #expect(result.stderr.contains("--async serves TCP, TLS and UNIX"), "\(flags): \(result.stderr)")
      #expect(result.stderr.contains("Usage: twine"), "\(flags): \(result.stderr)")
    }
  }
}
