import Glibc
import LoopbackTestSupport
import Testing
import TutorialServers

@testable import Twine

/// True when `fd` has input waiting now.
func pollReadable(_ fd: Int32) -> Bool {
  var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
  return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLIN) != 0
}

/// A blocking line client with a receive deadline.
final class LineClient {
  let fd: Int32
  private var buffer: [UInt8] = []

  init(port: Int) throws {
    fd = try #require(connectBlocking(port))
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit { close(fd) }

  func send(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
      var offset = 0
      while offset < bytes.count {
        let sent = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
        guard sent > 0 else { return }
        offset += sent
      }
    }
  }

  /// The next line without its CRLF, or nil at EOF or after 20 s without one.
  func line() -> String? {
    while true {
      if let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        var line = Array(buffer[..<end])
        buffer.removeFirst(end + 1)
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
      }
      var chunk = [UInt8](repeating: 0, count: 4096)
      let got = recv(fd, &chunk, chunk.count, 0)
      guard got > 0 else { return nil }
      buffer += chunk[..<got]
    }
  }

  /// Lines until one satisfies `match` (returned with the lines before it), or nil.
  func lines(until match: (String) -> Bool) -> [String]? {
    var seen: [String] = []
    while let line = line() {
      seen.append(line)
      if match(line) { return seen }
    }
    return nil
  }
}

/// Each reactor's room, kept for the test; a room is used only on its reactor (through `perform`).
final class RoomShelf: @unchecked Sendable {
  private let rooms = LockedValue<[Int: ChatFactory]>([:])
  func put(_ room: ChatFactory, at index: Int) { rooms.withLock { $0[index] = room } }
  func room(_ index: Int) -> ChatFactory? { rooms.withLock { $0[index] } }
}

@Suite("Chat across reactors")
struct ChatAcrossReactorsTests {
  /// True in `make test-asan` and `make test-tsan`, which set these for the test process.
  static let underSanitizer = ["ASAN_OPTIONS", "TSAN_OPTIONS"].contains { (name: String) in getenv(name) != nil }

  /// A chat of one room per reactor over a 3-reactor group, round robin (the k-th client
  /// lands on the k-th reactor in turn).
  static func chat(maxPendingBytes: Int = 1 << 20, shelf: RoomShelf = RoomShelf()) throws
    -> (ReactorGroup, Int, ConnectionCounters)
  {
    let group = try ReactorGroup(threads: 3)
    let hub = ChatHub(maxConnections: 100)
    let counters = ConnectionCounters(stripes: group.count)
    let port = try group.listenTCP(0, interface: "127.0.0.1", distribution: .roundRobin) { home in
      let room = ChatFactory(
        maxPendingBytes: maxPendingBytes, hub: hub, post: { body in home.callFromThread { _ in body() } },
        counters: counters.stripe(home.index))
      shelf.put(room, at: home.index)
      return room
    }
    return (group, port.address.port, counters)
  }

  // Not under the sanitizers: there each reactor runs 5-20x slower, and the hold travels between
  // reactors by a post; a flooder's lines outrun it and the slow reader is dropped at the hard cap
  // instead (ASan, once). A known limit of the cross-reactor rule, in the issue 12 note: it holds
  // when every reactor keeps up with its posts, as in the debug run.
  @Test(
    "a flooder is held back by a slow reader on another reactor, and read again once that reader catches up",
    .disabled(if: Self.underSanitizer, "the hold is a cross-reactor post; sanitizers slow reactors past it"))
  func slowReaderAcrossReactors() throws {
    let shelf = RoomShelf()
    let (group, port, _) = try Self.chat(maxPendingBytes: 64 << 10, shelf: shelf)
    defer {
      group.stop()
      group.run()
    }
    // Round robin from 1: the flooder on reactor 1, the slow reader on reactor 2, a reader on 0.
    let flooder = try LineClient(port: port)
    _ = flooder.line()
    let slow = try LineClient(port: port)
    _ = slow.line()
    let reader = try LineClient(port: port)
    _ = reader.line()
    #expect(flooder.lines { $0 == "* guest-3 joined" } != nil)
    // Non-blocking from here: the test floods and drains without ever blocking.
    for fd in [flooder.fd, slow.fd, reader.fd] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    var small = 65536
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int>.size))

    func heldBack() -> Bool {
      (try? group.reactors[1].perform { _ in shelf.room(1)?.users.first?.isHeldBack ?? false }) ?? false
    }
    // Flood without blocking until the flooder's room holds it back for the slow reader.
    let line = Array((String(repeating: "f", count: 200) + "\r\n").utf8)
    var sent = 0
    let deadline = monotonicNow() + 30
    var held = false
    while !held && monotonicNow() < deadline {
      let got = line.withUnsafeBytes { send(flooder.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if got == line.count {
        sent += 1
      } else {
        usleep(1000)
      }
      if sent % 50 == 0 || got != line.count { held = heldBack() }
      // The reader on reactor 0 keeps reading, so only the slow one backs up.
      while case let ready = pollReadable(reader.fd), ready {
        var chunk = [UInt8](repeating: 0, count: 65536)
        _ = recv(reader.fd, &chunk, chunk.count, 0)
      }
    }
    #expect(held, "held back for a reader on another reactor after \(sent) lines")
    // The slow reader catches up: the flooder is read again.
    var drained = 0
    let release = monotonicNow() + 30
    while heldBack() && monotonicNow() < release {
      var chunk = [UInt8](repeating: 0, count: 65536)
      let got = recv(slow.fd, &chunk, chunk.count, 0)
      if got > 0 { drained += got } else { usleep(2000) }
    }
    #expect(!heldBack(), "read again once the reader drained (\(drained) bytes read)")
  }

  @Test("3 clients on 3 reactors: nicks unique over all rooms, every line reaches the others, in order per sender")
  func linesCrossReactors() throws {
    let (group, port, counters) = try Self.chat()
    defer {
      group.stop()
      group.run()
    }
    var users: [LineClient] = []
    for number in 1...3 {
      let user = try LineClient(port: port)
      #expect(user.line() == "* welcome, guest-\(number); /nick NAME to rename, /quit to leave")
      users.append(user)
    }
    #expect(counters.acceptedPerStripe == [1, 1, 1], "one user per reactor")
    // Joins cross reactors (from two rooms: in either order).
    var joins: Set<String> = []
    #expect(
      users[0].lines {
        joins.insert($0); return joins.isSuperset(of: ["* guest-2 joined", "* guest-3 joined"])
      } != nil)

    // Nicks are the hub's: a nick taken on one reactor is taken on all.
    users[0].send("/nick alice\r\n")
    #expect(users[0].line() == "* you are now alice")
    users[1].send("/nick alice\r\n")
    #expect(users[1].lines { $0.hasPrefix("!") }?.last == "! nick alice is taken")

    let count = 200
    users[0].send((0..<count).map { "a\($0)\r\n" }.joined())
    users[1].send((0..<count).map { "b\($0)\r\n" }.joined())
    func said(_ lines: [String], by nick: String) -> [String] {
      lines.filter { $0.hasPrefix("<\(nick)> ") }.map { String($0.dropFirst(nick.count + 3)) }
    }
    var third: [String] = []
    while said(third, by: "alice").count < count || said(third, by: "guest-2").count < count {
      guard let line = users[2].line() else { break }
      third.append(line)
    }
    #expect(said(third, by: "alice") == (0..<count).map { "a\($0)" })
    #expect(said(third, by: "guest-2") == (0..<count).map { "b\($0)" })
    let first = try #require(users[0].lines { $0 == "<guest-2> b\(count - 1)" })
    #expect(said(first, by: "guest-2") == (0..<count).map { "b\($0)" })
    #expect(said(first, by: "alice").isEmpty, "a sender does not hear itself")
    let second = try #require(users[1].lines { $0 == "<alice> a\(count - 1)" })
    #expect(said(second, by: "alice") == (0..<count).map { "a\($0)" })

    // Leaving is told in every room.
    users[2].send("/quit\r\n")
    #expect(users[0].lines { $0 == "* guest-3 left" } != nil)
    #expect(users[1].lines { $0 == "* guest-3 left" } != nil)
  }

  @Test("a line past the longest allowed drops its sender, whichever reactor it is on; the others are told")
  func longLineAcrossReactors() throws {
    let (group, port, _) = try Self.chat()
    defer {
      group.stop()
      group.run()
    }
    let first = try LineClient(port: port)
    _ = first.line()
    let second = try LineClient(port: port)
    _ = second.line()
    #expect(first.lines { $0 == "* guest-2 joined" } != nil)
    second.send(String(repeating: "x", count: 5000) + "\r\n")
    #expect(second.lines { _ in false } == nil, "the sender is dropped (EOF)")
    let told = try #require(first.lines { $0.hasPrefix("* guest-2 left") })
    #expect(told.last?.hasPrefix("* guest-2 left") == true)
  }
}
