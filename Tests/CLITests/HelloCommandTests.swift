import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine hello`: every client gets the greeting, CRLF included, then EOF.
@Suite("twine hello")
struct HelloCommandTests {
  static let greeting = Array("Hello This is HD's Test protocol\r\n".utf8)

  @Test("hello sends a python3 client exactly the greeting and then EOF")
  func pythonClientGetsGreeting() throws {
    let server = try TwineServer(["hello", "--port", "0"])
    defer { server.kill() }
    let python = try findProgram("python3")
    let script = """
      import socket, sys
      with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20) as s:
          got = bytearray()
          while True:
              chunk = s.recv(4096)
              if not chunk:
                  break
              got += chunk
      sys.stdout.buffer.write(got)
      """
    let result = try ChildProcess.run(python, ["-c", script, "\(server.port)"], timeout: Timeouts.io)
    #expect(result.termination == .exited(0), "python3: \(result.stderr)")
    #expect(result.stdout == Self.greeting, "got \(printable(result.stdout))")
  }

  @Test("hello sends nc exactly the greeting and nc exits when the server closes")
  func ncGetsGreeting() throws {
    let server = try TwineServer(["hello", "--port", "0"])
    defer { server.kill() }
    let nc = try findProgram("nc")
    // stdin is /dev/null: nc sends nothing, so the server's close is a clean FIN.
    let result = try ChildProcess.run(nc, ["-N", "-w", "20", "127.0.0.1", "\(server.port)"], timeout: Timeouts.io)
    #expect(result.termination == .exited(0), "nc: \(result.stderr)")
    #expect(result.stdout == Self.greeting, "got \(printable(result.stdout))")
  }

  @Test("hello greets each of several clients with an orderly close, then exits 0 on SIGTERM")
  func greetsEveryClient() throws {
    let server = try TwineServer(["hello", "--port", "0"])
    defer { server.kill() }
    for _ in 0..<5 {
      let client = try TCPClient.connect(port: server.port)
      let received = try client.readToEnd()
      #expect(received.bytes == Self.greeting, "got \(printable(received.bytes))")
      #expect(received.end == .eof)
    }
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stdoutText == "listening on 127.0.0.1:\(server.port)\n")
    #expect(server.stderrText.contains("accepted=5"), "stderr: \(server.stderrText)")
  }
}
