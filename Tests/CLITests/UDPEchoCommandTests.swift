import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --udp` driven by a python3 UDP client and a UDP socket of this process.
@Suite("twine echo --udp")
struct UDPEchoCommandTests {
  /// Sends datagrams of sizes 1, 100, 1400, 9000 and 65507 bytes, each a different pattern,
  /// and checks each comes back whole from the server's address; prints "ok N" or exits 1.
  static let pythonClient = """
    import socket, sys
    server = ("127.0.0.1", int(sys.argv[1]))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(20)
    sizes = [1, 100, 1400, 9000, 65507]
    for n, size in enumerate(sizes):
        data = bytes((i * 31 + n) % 256 for i in range(size))
        s.sendto(data, server)
        got, sender = s.recvfrom(70000)
        if got != data or sender != server:
            print("mismatch at size", size, len(got), sender)
            sys.exit(1)
    print("ok", len(sizes))
    """

  @Test("each datagram a python3 client sends comes back whole, from the server's address")
  func pythonRoundTrip() throws {
    let server = try TwineServer(["echo", "--udp", "--port", "0"])
    defer { server.kill() }
    #expect(server.address == "127.0.0.1:\(server.port)")
    let python = try findProgram("python3")
    let result = try ChildProcess.run(python, ["-c", Self.pythonClient, "\(server.port)"], timeout: Timeouts.io)
    #expect(result.termination == .exited(0), "python3: \(result.stderr)")
    #expect(String(decoding: result.stdout, as: UTF8.self) == "ok 5\n")
  }

  @Test("two sockets of this process each get only their own datagrams back; SIGTERM exits 0")
  func twoClientsThenSIGTERM() throws {
    let server = try TwineServer(["echo", "--udp", "--port", "0"])
    defer { server.kill() }
    let first = try UDPClient()
    let second = try UDPClient()
    for round in 0..<3 {
      try first.send("first \(round)", toPort: server.port)
      try second.send("second \(round)", toPort: server.port)
    }
    for round in 0..<3 {
      #expect(try first.receive() == "first \(round)")
      #expect(try second.receive() == "second \(round)")
    }
    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    #expect(server.stdoutText == "listening on 127.0.0.1:\(server.port)\n")
    #expect(server.stderrText.contains("stopped"), "stderr: \(server.stderrText)")
  }

  @Test("a UDP port already bound makes twine echo --udp exit non-zero with one line on stderr")
  func portTaken() throws {
    let holder = try UDPClient()
    let result = try ChildProcess.run(try TwineExecutable.path(), ["echo", "--udp", "--port", "\(holder.port)"])
    #expect(result.termination.isFailure)
    #expect(result.stderr == "twine: cannot listen on 127.0.0.1:\(holder.port): Address already in use\n")
    #expect(result.stdout.isEmpty)
  }
}

/// A UDP socket bound to 127.0.0.1 on an ephemeral port, with a receive timeout.
final class UDPClient {
  let fd: Int32
  let port: Int

  init() throws {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket(): \(errorText(errno))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard bound else {
      let text = errorText(errno)
      close(fd)
      throw HarnessError("cannot bind a UDP socket: \(text)")
    }
    self.fd = fd
    port = Int(UInt16(bigEndian: address.sin_port))
    var timeout = timeval(tv_sec: Int(Timeouts.io), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit { close(fd) }

  /// Sends `text` as one datagram to 127.0.0.1:`port`.
  func send(_ text: String, toPort port: Int) throws {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    let bytes = Array(text.utf8)
    let sent = withUnsafePointer(to: &address) { sa in
      sa.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
        bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
      }
    }
    guard sent == bytes.count else { throw HarnessError("sendto: \(errorText(errno))") }
  }

  /// The next datagram as text (throws after the receive timeout).
  func receive() throws -> String {
    var buffer = [UInt8](repeating: 0, count: 65536)
    let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    guard got >= 0 else { throw HarnessError("recv: \(errorText(errno))") }
    return String(decoding: buffer[0..<got], as: UTF8.self)
  }
}
