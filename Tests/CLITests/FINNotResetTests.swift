import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A client that types first (a telnet negotiating before it reads) must still read the
/// server's last words and then a clean end of stream: the server ends with FIN, never RST.
@Suite("FIN, not RST, after input nobody read")
struct FINNotResetTests {
  static let greeting = Array("Hello This is HD's Test protocol\r\n".utf8)

  /// Connects, sends before reading, then reads to the end: the bytes and how it ended.
  private func typeFirst(port: Int) throws -> (bytes: [UInt8], end: StreamEnd) {
    let client = try TCPClient.connect(port: port)
    try client.send(Array(repeating: UInt8(ascii: "x"), count: 512))
    return try client.readToEnd()
  }

  @Test("twine hello: 100 of 100 clients that typed first get the greeting, then EOF")
  func helloAfterInput() throws {
    let server = try TwineServer(["hello", "--port", "0"])
    defer { server.kill() }
    var resets = 0
    for _ in 0..<100 {
      let (bytes, end) = try typeFirst(port: server.port)
      #expect(bytes == Self.greeting, "got \(printable(bytes))")
      if end == .reset { resets += 1 }
    }
    #expect(resets == 0, "\(resets) of 100 clients got RST")
  }

  @Test("twine echo --max-connections 1: 100 of 100 refused clients that typed first get the refusal, then EOF")
  func refusalAfterInput() throws {
    let server = try TwineServer(["echo", "--port", "0", "--max-connections", "1"])
    defer { server.kill() }
    let holder = try TCPClient.connect(port: server.port)
    #expect(try holder.echo("held") == "held")
    var resets = 0
    for _ in 0..<100 {
      let (bytes, end) = try typeFirst(port: server.port)
      #expect(String(decoding: bytes, as: UTF8.self) == "Too many connections, try later")
      if end == .reset { resets += 1 }
    }
    #expect(resets == 0, "\(resets) of 100 refused clients got RST")
    holder.close()
  }
}
