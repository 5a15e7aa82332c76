import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo` driven by real client programs: OpenBSD netcat and a python3 socket client.
@Suite("twine echo with real clients")
struct EchoCommandTests {
  /// 100 kB of every byte value, newlines and NULs included: more than one 4 KiB read.
  static let payload: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 256) }

  /// Reads its payload from stdin, sends it, half-closes, prints what comes back until EOF.
  static let pythonClient = """
    import socket, sys
    data = sys.stdin.buffer.read()
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    sys.stdout.buffer.write(got)
    """

  @Test("echo returns exactly what nc sent, then EOF")
  func ncRoundTrip() throws {
    let server = try TwineServer(["echo", "--port", "0"])
    defer { server.kill() }
    let nc = try findProgram("nc")
    // -N: shut down the sending side at EOF on stdin, then read until the server closes.
    let result = try ChildProcess.run(
      nc, ["-N", "-w", "20", "127.0.0.1", "\(server.port)"], stdin: Self.payload, timeout: Timeouts.io)
    #expect(result.termination == .exited(0), "nc: \(result.stderr)")
    #expect(result.stdout.count == Self.payload.count)
    #expect(result.stdout == Self.payload)
  }

  @Test("echo returns exactly what a python3 socket client sent, then EOF")
  func pythonRoundTrip() throws {
    let server = try TwineServer(["echo", "--port", "0"])
    defer { server.kill() }
    let python = try findProgram("python3")
    let result = try ChildProcess.run(
      python, ["-c", Self.pythonClient, "\(server.port)"], stdin: Self.payload, timeout: Timeouts.io)
    #expect(result.termination == .exited(0), "python3: \(result.stderr)")
    #expect(result.stdout.count == Self.payload.count)
    #expect(result.stdout == Self.payload)
  }

  @Test("echo exits 0 on SIGTERM after serving nc and python3, with one stdout line and a stop log")
  func servesBothClientsThenStopsOnSIGTERM() throws {
    let server = try TwineServer(["echo", "--port", "0"])
    defer { server.kill() }
    let message = Array("hello twine\nsecond line\r\n".utf8)

    let nc = try findProgram("nc")
    let viaNC = try ChildProcess.run(
      nc, ["-N", "-w", "20", "127.0.0.1", "\(server.port)"], stdin: message, timeout: Timeouts.io)
    #expect(viaNC.termination == .exited(0), "nc: \(viaNC.stderr)")
    #expect(viaNC.stdout == message, "nc got \(printable(viaNC.stdout))")

    let python = try findProgram("python3")
    let viaPython = try ChildProcess.run(
      python, ["-c", Self.pythonClient, "\(server.port)"], stdin: message, timeout: Timeouts.io)
    #expect(viaPython.termination == .exited(0), "python3: \(viaPython.stderr)")
    #expect(viaPython.stdout == message, "python3 got \(printable(viaPython.stdout))")

    server.send(SIGTERM)
    let termination = server.waitForExit()
    #expect(termination == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stdoutText == "listening on 127.0.0.1:\(server.port)\n")
    #expect(server.address == "127.0.0.1:\(server.port)")
    // The info-level log line written after the loop stops counts both clients.
    let stderr = server.stderrText
    #expect(stderr.contains("stopped"), "stderr: \(stderr)")
    #expect(stderr.contains("accepted=2"), "stderr: \(stderr)")
    #expect(stderr.contains("refused=0"), "stderr: \(stderr)")
  }

  @Test("echo serves several clients at once, each getting only its own bytes")
  func interleavedClients() throws {
    let server = try TwineServer(["echo", "--port", "0"])
    defer { server.kill() }
    let clients = try (0..<5).map { _ in try TCPClient.connect(port: server.port) }
    for round in 0..<3 {
      for (index, client) in clients.enumerated() {
        try client.send("client \(index) round \(round)\n")
      }
      for (index, client) in clients.enumerated() {
        let expected = "client \(index) round \(round)\n"
        let got = try client.read(count: expected.utf8.count)
        #expect(String(decoding: got, as: UTF8.self) == expected)
      }
    }
    for client in clients {
      client.shutdownWrite()
      let rest = try client.readToEnd()
      #expect(rest.bytes.isEmpty)
      #expect(rest.end == .eof)
    }
  }

  @Test("--log-level warning keeps stderr empty on a clean run; debug logs each connection")
  func logLevels() throws {
    do {
      let quiet = try TwineServer(["echo", "--port", "0", "--log-level", "warning"])
      defer { quiet.kill() }
      let client = try TCPClient.connect(port: quiet.port)
      #expect(try client.echo("ping") == "ping")
      client.close()
      quiet.send(SIGTERM)
      #expect(quiet.waitForExit() == .exited(0))
      #expect(quiet.stderrText == "")
    }
    do {
      let chatty = try TwineServer(["echo", "--port", "0", "--log-level", "debug"])
      defer { chatty.kill() }
      let client = try TCPClient.connect(port: chatty.port)
      #expect(try client.echo("ping") == "ping")
      client.shutdownWrite()
      _ = try client.readToEnd()
      chatty.send(SIGTERM)
      #expect(chatty.waitForExit() == .exited(0))
      let stderr = chatty.stderrText
      #expect(stderr.contains("connection made"), "stderr: \(stderr)")
      #expect(stderr.contains("connection lost"), "stderr: \(stderr)")
    }
  }
}
