import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `twine echo --udp` against a datagram whose source address is forged to be the server's own.
@Suite("twine echo --udp loop guard")
struct UDPLoopGuardCommandTests {
  /// Sends argv[2] UDP datagrams 127.0.0.1:PORT -> 127.0.0.1:PORT (PORT = argv[1]) through a
  /// raw socket, so their source is the server's own address; prints "sent N".
  static let forger = """
    import socket, struct, sys
    port, count = int(sys.argv[1]), int(sys.argv[2])
    host = socket.inet_aton("127.0.0.1")
    payload = b"forged: from yourself"
    length = 8 + len(payload)
    def checksum(data):
        if len(data) % 2:
            data += b"\\0"
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        while total >> 16:
            total = (total & 0xffff) + (total >> 16)
        return ~total & 0xffff
    pseudo = host + host + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = struct.pack("!HHHH", port, port, length, 0) + payload
    udp = struct.pack("!HHHH", port, port, length, checksum(pseudo + udp) or 0xffff) + payload
    # IPPROTO_RAW: we write the IP header; the kernel fills in its id and checksum.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0, 64, socket.IPPROTO_UDP, 0, host, host)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for _ in range(count):
        s.sendto(ip + udp, ("127.0.0.1", 0))
    print("sent", count)
    """

  /// Whether this process may open a raw socket (root or CAP_NET_RAW), which forging needs.
  static var canForge: Bool {
    let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
    guard fd >= 0 else { return false }
    close(fd)
    return true
  }

  @Test(
    "forged datagrams from the server's own address are dropped: no CPU spent looping, logged once, counted; clients are answered",
    .enabled(if: canForge, "forging a source address needs a raw socket (root or CAP_NET_RAW)"))
  func forgedOwnSource() throws {
    let server = try TwineServer(["echo", "--udp", "--port", "0"])
    defer { server.kill() }
    let python = try findProgram("python3")
    let forged = try ChildProcess.run(python, ["-c", Self.forger, "\(server.port)", "3"], timeout: Timeouts.io)
    #expect(forged.termination == .exited(0), "python3: \(forged.stderr)")
    #expect(String(decoding: forged.stdout, as: UTF8.self) == "sent 3\n")

    let client = try UDPClient()
    try client.send("a real client", toPort: server.port)
    #expect(try client.receive() == "a real client")

    // An echo answering itself keeps a core busy; a guarded one sleeps.
    let before = try cpuSeconds(of: server.pid)
    pause(1.0)
    let spent = try cpuSeconds(of: server.pid) - before
    #expect(spent < 0.1, "the server used \(spent) s of CPU in 1 s after the forged datagrams")

    server.send(SIGTERM)
    #expect(server.waitForExit() == .exited(0), "stderr: \(server.stderrText)")
    let warnings = server.stderrText.components(separatedBy: "datagram from the port's own address dropped").count - 1
    #expect(warnings == 1, "logged once per port: \(server.stderrText)")
    #expect(server.stderrText.contains("from=127.0.0.1:\(server.port)"), "stderr: \(server.stderrText)")
    #expect(server.stderrText.contains("droppedLoops=3"), "stderr: \(server.stderrText)")
  }
}
