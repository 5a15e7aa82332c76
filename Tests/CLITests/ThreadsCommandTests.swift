import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo|hello|chat --threads N`: a reactor per thread behind one port.
@Suite("twine --threads")
struct ThreadsCommandTests {
  static let refusal = Array("Too many connections, try later".utf8)

  @Test(
    "echo --max-connections 100 --threads 4, 500 clients at once: 100 served, exactly 400 refused with the text; then 100 more served"
  )
  func limitHoldsAcrossReactors() throws {
    raiseOpenFileLimit()
    let server = try TwineServer(["echo", "--port", "0", "--threads", "4", "--max-connections", "100"])
    defer { server.kill() }
    let clients = try (0..<500).map { _ in try TCPClient.connect(port: server.port) }
    // The refused ones hear at once; the served ones hear nothing until they send.
    var refused: Set<Int> = []
    #expect(
      waitUntil(timeout: 60) {
        for (index, client) in clients.enumerated() where !refused.contains(index) && client.isReadable(timeout: 0) {
          refused.insert(index)
        }
        return refused.count >= 400
      }, "refused so far: \(refused.count)")
    pause(0.2)  // a 401st refusal would show up now
    for (index, client) in clients.enumerated() where !refused.contains(index) {
      #expect(!client.isReadable(timeout: 0), "client \(index) was refused beyond the 400")
    }
    #expect(refused.count == 400)
    for index in refused {
      let received = try clients[index].readToEnd()
      #expect(received.bytes == Self.refusal, "got \(printable(received.bytes))")
      #expect(received.end == .eof)
    }
    var served = 0
    for (index, client) in clients.enumerated() where !refused.contains(index) {
      if try client.echo("served \(index)") == "served \(index)" { served += 1 }
    }
    #expect(served == 100)
    for (index, client) in clients.enumerated() where !refused.contains(index) {
      client.shutdownWrite()
      _ = try client.readToEnd()
    }
    // Every slot is free again: 100 new clients, all served.
    let again = try (0..<100).map { _ in try TCPClient.connect(port: server.port) }
    for (index, client) in again.enumerated() {
      #expect(try client.echo("again \(index)") == "again \(index)")
    }
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("refused=400"), "stderr: \(server.stderrText)")
    let perReactor = try #require(
      server.stderrText.split(separator: " ").first { $0.hasPrefix("acceptedPerReactor=") })
    let counts = perReactor.dropFirst("acceptedPerReactor=".count).split(separator: ",").compactMap {
      Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    #expect(counts.count == 4 && counts.reduce(0, +) == 600, "\(perReactor)")
  }

  @Test("hello --threads 2 greets; chat --threads 3 relays a line between users on different reactors")
  func helloAndChat() throws {
    let hello = try TwineServer(["hello", "--port", "0", "--threads", "2"])
    defer { hello.kill() }
    for _ in 0..<4 {
      let client = try TCPClient.connect(port: hello.port)
      #expect(try client.readToEnd().bytes == Array("Hello This is HD's Test protocol\r\n".utf8))
    }

    let chat = try TwineServer(["chat", "--port", "0", "--threads", "3"])
    defer { chat.kill() }
    let users = try (0..<3).map { _ in try TCPClient.connect(port: chat.port) }
    var nicks: [String] = []
    for user in users {
      // "* welcome, guest-N; ..." (N in the order the reactors, in parallel, took the users)
      let welcome = String(decoding: try user.read(count: "* welcome, guest-1;".utf8.count), as: UTF8.self)
      nicks.append(String(welcome.dropFirst("* welcome, ".count).dropLast()))
    }
    #expect(Set(nicks) == ["guest-1", "guest-2", "guest-3"])
    try users[0].send("hello, everyone\r\n")
    for user in users.dropFirst() {
      var text = ""
      #expect(
        try waitUntil(timeout: Timeouts.io) {
          text += String(decoding: try user.read(count: 1), as: UTF8.self)
          return text.contains("<\(nicks[0])> hello, everyone\r\n")
        }, "got \(text)")
    }
    chat.send(SIGTERM)
    #expect(chat.waitForExit() == .exited(0), "stderr: \(chat.stderrText)")
  }

  @Test("--threads -1 is a usage error; --udp, --total-rate-limit and the one-reactor flags need --threads 1")
  func badThreads() throws {
    for (arguments, message) in [
      (["echo", "--threads", "-1"], "--threads must be 0 (one per core) or more, not -1"),
      (["echo", "--udp", "--threads", "2"], "--udp serves on one thread: leave --threads at 1"),
      (
        ["echo", "--total-rate-limit", "1000", "--threads", "2"],
        "--total-rate-limit is kept per reactor: use it with --threads 1"
      ),
      (
        ["echo", "--threads", "2", "--listen", "tcp:0", "--metrics", "0"],
        "--listen, --metrics work on one reactor only: leave --threads at 1"
      ),
      (
        ["hello", "--threads", "0", "--takeover", "/tmp/x"],
        "--takeover works on one reactor only: leave --threads at 1"
      ),
      (["chat", "--threads", "3", "--control", "/tmp/x"], "--control works on one reactor only: leave --threads at 1"),
      (["echo", "--threads", "2", "--async"], "--async serves on one reactor: leave --threads at 1"),
      (
        ["echo", "--listen", "ssl:0:privateKey=k.pem:certKey=c.pem", "--takeover", "/tmp/x"],
        "--takeover with --listen takes over tcp:, tcp6: and unix: endpoints only, not ssl:0:privateKey=k.pem:certKey=c.pem"
      ),
    ] {
      let result = try ChildProcess.run(try TwineExecutable.path(), arguments)
      #expect(result.termination.isFailure)
      #expect(result.stderr.hasPrefix("Error: \(message)\n"), "stderr: \(result.stderr)")
      #expect(result.stdout.isEmpty)
    }
  }
}
