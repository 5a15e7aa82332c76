import Testing
import TutorialServers
import TwineTesting

/// A chat room of in-memory connections sharing one clock.
final class Room {
  let factory: ChatFactory
  let clock = ManualClock()
  var users: [StringTransport] = []

  init(_ factory: ChatFactory = ChatFactory(), users count: Int) {
    self.factory = factory
    for _ in 0..<count { join() }
    for user in users { user.clearWritten() }
  }

  @discardableResult
  func join() -> StringTransport {
    let transport = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 1), port: 2000 + users.count), clock: clock)
    transport.connect(factory: factory)
    users.append(transport)
    return transport
  }

  subscript(index: Int) -> StringTransport { users[index] }

  /// What user `index` was sent since the last call, as lines; clears it.
  func lines(_ index: Int) -> [String] {
    let text = users[index].writtenString
    users[index].clearWritten()
    return text.split(separator: "\r\n", omittingEmptySubsequences: false).dropLast().map(String.init)
  }

  func closeAll() { for user in users { user.peerClosed() } }
}

@Suite("Chat on the in-memory transport")
struct ChatTests {
  @Test("a newcomer is greeted with its guest nick and the others are told")
  func join() {
    let room = Room(users: 1)
    defer { room.closeAll() }
    room.join()
    #expect(room.lines(1) == ["* welcome, guest-2; /nick NAME to rename, /quit to leave"])
    #expect(room.lines(0) == ["* guest-2 joined"])
    #expect(room.factory.nicknames == ["guest-1", "guest-2"])
  }

  @Test("a line goes to everyone else, prefixed by the sender's nick, and not back to the sender")
  func broadcastToOthersOnly() {
    let room = Room(users: 3)
    defer { room.closeAll() }
    room[0].receive("hello all\r\nsecond\r\n")
    #expect(room.lines(0) == [])
    #expect(room.lines(1) == ["<guest-1> hello all", "<guest-1> second"])
    #expect(room.lines(2) == ["<guest-1> hello all", "<guest-1> second"])
    room[2].receive("\r\n")  // empty lines are ignored
    #expect(room.lines(0) == [] && room.lines(1) == [])
  }

  @Test("control characters are replaced before a line is relayed")
  func controlCharactersReplaced() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    room[0].receive([104, 105, 0x1B, 91, 50, 74, 0x07, 0x09, 0x7F, 13, 10])
    #expect(room.lines(1) == ["<guest-1> hi?[2J?\t?"])
  }

  @Test("/nick renames: the user is told, the others are told, later lines carry the new nick")
  func nick() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    room[0].receive("/nick alice\r\n")
    #expect(room.lines(0) == ["* you are now alice"])
    #expect(room.lines(1) == ["* guest-1 is now alice"])
    room[0].receive("hi\r\n")
    #expect(room.lines(1) == ["<alice> hi"])
    #expect(room.factory.nicknames == ["alice", "guest-2"])
  }

  @Test("/nick refuses empty, too long, unprintable and taken nicks with a clear error, keeping the old nick")
  func nickErrors() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    room[1].receive("/nick bob\r\n")
    _ = room.lines(0)
    _ = room.lines(1)
    let cases: [([UInt8], String)] = [
      (Array("/nick".utf8), "! a nick is 1 to 32 bytes: /nick NAME"),
      (Array("/nick ".utf8), "! a nick is 1 to 32 bytes: /nick NAME"),
      (Array("/nick \(String(repeating: "n", count: 33))".utf8), "! a nick is 1 to 32 bytes: /nick NAME"),
      (Array("/nick a b".utf8), "! a nick may hold only printable characters, no spaces"),
      (Array("/nick a".utf8) + [1], "! a nick may hold only printable characters, no spaces"),
      (Array("/nick a".utf8) + [0xFF], "! a nick may hold only printable characters, no spaces"),
      (Array("/nick bob".utf8), "! nick bob is taken"),
    ]
    for (line, error) in cases {
      room[0].receive(line + [13, 10])
      #expect(room.lines(0) == [error], "\(line)")
      #expect(room.lines(1) == [], "\(line)")
    }
    #expect(room.factory.nicknames == ["guest-1", "bob"])
    room[0].receive("/nick \(String(repeating: "é", count: 16))\r\n")  // 32 bytes of UTF-8
    #expect(room.lines(0) == ["* you are now \(String(repeating: "é", count: 16))"])
  }

  @Test("an unknown command is answered with an error, not relayed")
  func unknownCommand() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    room[0].receive("/shout hi\r\n")
    #expect(room.lines(0) == ["! unknown command /shout; try /nick NAME or /quit"])
    #expect(room.lines(1) == [])
  }

  @Test("/quit says bye, closes cleanly, and the others see the user leave")
  func quit() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    room[0].receive("/quit\r\nignored\r\n")
    #expect(room.lines(0) == ["* bye"])
    #expect(room[0].closeReason == .closedByUs)
    #expect(room.lines(1) == ["* guest-1 left"])
    #expect(room.factory.nicknames == ["guest-2"])
  }

  @Test("a line over the limit drops only its sender, with a protocolError; the others chat on")
  func longLineDropsOnlySender() {
    let room = Room(ChatFactory(maxLineLength: 100), users: 3)
    defer { room.closeAll() }
    room[0].receive(String(repeating: "x", count: 5000))
    #expect(room[0].closeReason == .protocolError("line longer than 100 bytes"))
    #expect(room.lines(1) == ["* guest-1 left (protocol error: line longer than 100 bytes)"])
    _ = room.lines(2)
    room[1].receive("still here\r\n")
    #expect(room.lines(2) == ["<guest-2> still here"])
  }

  @Test("a client that does not read is dropped once its queue passes the bound; the others keep receiving")
  func slowClientDropped() {
    let room = Room(ChatFactory(maxPendingBytes: 64 << 10), users: 3)
    defer { room.closeAll() }
    room[2].holdWrites = true
    let line = String(repeating: "m", count: 1000)
    var sent = 0
    while !room[2].isClosed && sent < 1000 {
      room[0].receive(line + "\r\n")
      sent += 1
      #expect(room[2].pendingWriteCount <= 64 << 10)
    }
    #expect(room[2].closeReason == .bufferOverflow)
    #expect(sent < 80)  // about 64 KiB of 1 KiB lines
    var seen = room.lines(1)
    #expect(seen.count == sent + 1)
    #expect(seen.last == "* guest-3 left (too slow: output queue full)")
    room[0].receive("after\r\n")
    seen = room.lines(1)
    #expect(seen == ["<guest-1> after"])
    #expect(room.factory.nicknames == ["guest-1", "guest-2"])
  }

  @Test("with an idle timeout, a silent user is told and dropped; an active one stays")
  func idleTimeout() {
    let room = Room(ChatFactory(idleTimeout: 60), users: 2)
    defer { room.closeAll() }
    room.clock.advance(30)
    room[1].receive("still here\r\n")
    _ = room.lines(0)
    room.clock.advance(31)
    #expect(room[0].closeReason == .timedOut)
    #expect(room.lines(0) == ["* idle for 60 s, bye"])
    #expect(!room[1].isClosed)
    #expect(room.lines(1) == ["* guest-1 left (idle)"])
    room.clock.advance(30)
    #expect(room[1].closeReason == .timedOut)
  }

  @Test("without an idle timeout nothing is scheduled")
  func noIdleTimeoutByDefault() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    #expect(room.clock.pendingCalls.isEmpty)
    room.clock.advance(1_000_000)
    #expect(!room[0].isClosed)
  }
}

@Suite("Chat users and their room")
struct ChatRoomTests {
  @Test("a user takes its room from init(room:), not from its factory: a closure factory can serve a room")
  func roomFromInit() {
    let room = ChatFactory()
    let other = Factory { _ in ChatProtocol(room: room) }
    let first = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 1), port: 2000))
    let second = StringTransport(peer: SocketAddress(ipv4: (127, 0, 0, 1), port: 2001))
    defer {
      first.peerClosed()
      second.peerClosed()
    }
    let user = first.connect(factory: room)
    second.connect(factory: other)
    #expect(user?.factory === room)
    #expect(room.nicknames == ["guest-1", "guest-2"])
    #expect(first.writtenString.hasSuffix("* guest-2 joined\r\n"))
  }

  @Test("a user made by init() has no room and is closed as soon as it connects")
  func noRoomCloses() {
    let transport = StringTransport()
    defer { transport.peerClosed() }
    transport.connect(factory: Factory(ChatProtocol.self))
    #expect(transport.written.isEmpty)
    #expect(transport.closeReason == .closedByUs)
  }
}
