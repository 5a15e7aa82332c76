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

  /// Each case: bytes a user sends, and what the chat shows of them (`?` for each control
  /// scalar and for each invalid UTF-8 sequence).
  static let textCases: [(name: String, sent: [UInt8], shown: String)] = [
    ("printable ASCII", Array("hi there!".utf8), "hi there!"),
    ("ESC [2J (C0)", [0x1B, 0x5B, 0x32, 0x4A], "?[2J"),
    ("NUL, BEL, tab, CR inside a line (C0)", [0x61, 0x00, 0x07, 0x09, 0x0D, 0x62], "a????b"),
    ("DEL", [0x61, 0x7F, 0x62], "a?b"),
    ("CSI encoded, C2 9B (C1)", [0x61, 0xC2, 0x9B, 0x32, 0x4A], "a?2J"),
    ("OSC encoded, C2 9D (C1)", [0xC2, 0x9D, 0x30, 0x3B, 0x74, 0x07], "?0;t?"),
    ("U+0080 and U+009F (the ends of C1)", [0xC2, 0x80, 0xC2, 0x9F], "??"),
    ("raw 0x9B, not UTF-8 (C1 byte)", [0x61, 0x9B, 0x32, 0x4A], "a?2J"),
    ("raw 0x80 and 0x9D", [0x80, 0x9D], "??"),
    ("NEL U+0085", [0x61, 0xC2, 0x85, 0x62], "a?b"),
    ("RLO U+202E", Array("a\u{202E}cba".utf8), "a?cba"),
    ("LRE U+202A … PDF U+202C", Array("\u{202A}x\u{202C}".utf8), "?x?"),
    ("LRI U+2066 … PDI U+2069", Array("\u{2066}x\u{2069}".utf8), "?x?"),
    ("invalid UTF-8: 0xFF, a truncated sequence", [0x61, 0xFF, 0x62, 0xE2, 0x82], "a?b?"),
    ("invalid UTF-8: an overlong '/'", [0xC0, 0xAF], "??"),
    ("invalid UTF-8: an encoded surrogate", [0xED, 0xA0, 0x80], "???"),
    ("letters, emoji and U+200F (a mark, not an override) pass", Array("é ü 日本 🙂 \u{200F}".utf8), "é ü 日本 🙂 \u{200F}"),
    ("U+2029 and U+2070 just outside the ranges pass", Array("\u{2029}\u{2070}".utf8), "\u{2029}\u{2070}"),
  ]

  @Test("ChatText.clean: every C0, C1 (raw or encoded), DEL, bidi control and invalid UTF-8 becomes ?")
  func cleanTable() {
    for (name, sent, shown) in Self.textCases {
      #expect(ChatText.clean(sent) == Array(shown.utf8), "\(name)")
      #expect(ChatText.isClean(sent) == (Array(shown.utf8) == sent), "\(name)")
    }
  }

  @Test("a relayed line goes through ChatText.clean; a nick holding any of the same is refused")
  func messagesAndNicksShareTheRule() {
    let room = Room(users: 2)
    defer { room.closeAll() }
    for (name, sent, shown) in Self.textCases {
      room[0].receive(sent + [13, 10])
      #expect(room.lines(1) == ["<guest-1> \(shown)"], "\(name)")
      guard Array(shown.utf8) != sent else { continue }
      room[0].receive(Array("/nick n".utf8) + sent + [13, 10])
      #expect(room.lines(0) == ["! a nick may hold only printable characters, no spaces"], "\(name)")
    }
    #expect(room.lines(1) == [])
    #expect(room.factory.nicknames == ["guest-1", "guest-2"])
  }

  @Test("an unknown command is echoed cleaned")
  func unknownCommandCleaned() {
    let room = Room(users: 1)
    defer { room.closeAll() }
    room[0].receive([0x2F, 0x78, 0xC2, 0x9B, 0x31, 0x41, 13, 10])
    #expect(room.lines(0) == ["! unknown command /x?1A; try /nick NAME or /quit"])
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

  /// 64 KiB hard cap: pause mark 8 KiB, resume mark 2 KiB, sender allowance 2 KiB; stall timeout 10 s.
  static func fairRoom(users: Int) -> Room {
    Room(ChatFactory(maxPendingBytes: 64 << 10, lineTimeout: nil), users: users)
  }

  static let kilobyteLine = String(repeating: "m", count: 998) + "\r\n"

  @Test("a flooder is held back to the pace of a reader that keeps reading; the reader is never dropped")
  func flooderHeldBackReaderKept() {
    let room = Self.fairRoom(users: 3)  // 0 floods, 1 reads 3 KB per 0.5 s, 2 reads everything at once
    defer { room.closeAll() }
    room[1].holdWrites = true
    let flooder = room.factory.users[0]
    var heldBackSeen = 0
    for _ in 0..<200 {  // 100 s on the clock: ten stall timeouts
      room[0].receive(String(repeating: Self.kilobyteLine, count: 16))
      if flooder.isHeldBack {
        heldBackSeen += 1
        #expect(room[0].producerPaused)
      }
      #expect(room[1].pendingWriteCount <= room.factory.pauseMark + room.factory.senderAllowance + 1000)
      room[1].flushWrites(3000)
      room.clock.advance(0.5)
    }
    #expect(!room[1].isClosed)
    #expect(heldBackSeen > 150)
    // The fast reader got no more than the slow one read plus what the slow one still holds.
    let slow = room.lines(1).count
    let fast = room.lines(2).count
    #expect(fast <= slow + room[1].pendingWriteCount / 1000 + 1)
    #expect(slow > 500)  // ~3 KB per step for 200 steps
  }

  @Test("a reader that stops reading is dropped after the stall timeout, the others are told, the flooder goes on")
  func stalledReaderDropped() {
    let room = Self.fairRoom(users: 3)
    defer { room.closeAll() }
    room[1].holdWrites = true
    room[0].receive(String(repeating: Self.kilobyteLine, count: 20))
    #expect(room.factory.users[1].isBacklogged)
    #expect(room.factory.users[0].isHeldBack)
    room.clock.advance(5)
    room[1].flushWrites(100)  // some progress at 5 s ...
    room.clock.advance(10)  // ... then none: seen at the next check (6.25 s), so 10 s later is not yet a stall
    #expect(!room[1].isClosed)
    room.clock.advance(1.2)  // 16.2 s: read nothing since 6.25 s at the latest
    #expect(!room[1].isClosed)
    #expect(!room[1].isClosed)
    _ = room.lines(2)
    room.clock.advance(0.1)  // the check at 16.25 s
    #expect(room[1].closeReason == .timedOut)
    let seen = room.lines(2)
    #expect(seen.first == "* guest-2 left (too slow: read nothing for 10 s)")
    #expect(seen.count > 1, "the flooder, read again from the loop, sends what it held")
    #expect(!room.factory.users[0].isHeldBack && !room[0].producerPaused)
    room[0].receive("after\r\n")
    #expect(room.lines(2) == ["<guest-1> after"])
  }

  @Test("a backlogged reader does not slow anyone who sends less than the allowance")
  func talkerNotHeldBack() {
    let room = Self.fairRoom(users: 4)  // 0 floods, 1 never reads, 2 watches, 3 talks
    defer { room.closeAll() }
    room[1].holdWrites = true
    room[0].receive(String(repeating: Self.kilobyteLine, count: 20))
    #expect(room.factory.users[0].isHeldBack)
    _ = room.lines(2)
    for index in 0..<20 {
      room[3].receive("line \(index)\r\n")
      #expect(room.lines(2) == ["<guest-4> line \(index)"])
      room.clock.advance(0.1)
    }
    #expect(!room.factory.users[3].isHeldBack)
  }

  @Test("a queue past maxPendingBytes still drops its user at once (.bufferOverflow): memory stays bounded")
  func hardCap() {
    let room = Self.fairRoom(users: 40)
    defer { room.closeAll() }
    room[0].holdWrites = true
    for sender in 1..<40 {  // each under the allowance at first, together past the hard cap
      room[sender].receive(String(repeating: Self.kilobyteLine, count: 3))
      #expect(room[0].pendingWriteCount <= 64 << 10)
    }
    #expect(room[0].closeReason == .bufferOverflow)
    #expect(room.lines(1).contains("* guest-1 left (too slow: output queue full)"))
  }

  @Test("a user flooding itself with commands while not reading is held back on its own queue")
  func selfFloodHeldBack() {
    let room = Self.fairRoom(users: 2)
    defer { room.closeAll() }
    room[0].holdWrites = true
    room[0].receive(String(repeating: "/bogus\r\n", count: 2000))
    #expect(room.factory.users[0].isHeldBack)
    #expect(room[0].pendingWriteCount <= room.factory.pauseMark + room.factory.senderAllowance + 100)
    #expect(room.lines(0).count < 2000)
    room[0].holdWrites = false  // it reads again
    room[0].flushWrites()
    room.clock.advance(0)
    #expect(!room.factory.users[0].isHeldBack)
    #expect(room.lines(0).count == 2000)  // every command answered, none lost
  }

  @Test("a line not ended within the line timeout drops its sender, though each byte resets the idle timeout")
  func lineTimeout() {
    let room = Room(ChatFactory(idleTimeout: 5, lineTimeout: 30), users: 2)
    defer { room.closeAll() }
    for _ in 0..<29 {
      room[0].receive("x")
      room[1].receive("\r\n")  // (an empty line: keeps user 1 from its own idle timeout)
      room.clock.advance(1)
    }
    #expect(!room[0].isClosed)
    room[0].receive("x")
    room.clock.advance(1.01)
    #expect(room[0].closeReason == .timedOut)
    #expect(room.lines(0) == ["* line timeout (no end of line in 30 s), bye"])
    #expect(room.lines(1) == ["* guest-1 left (line timeout)"])
  }

  @Test("the line timeout counts from the first byte of the line still unfinished")
  func lineTimeoutRestartsPerLine() {
    let room = Room(ChatFactory(lineTimeout: 30), users: 2)
    defer { room.closeAll() }
    room[0].receive("abc")
    room.clock.advance(20)
    room[0].receive("\r\nxyz")  // "abc" ended; "xyz" began at 20 s
    room.clock.advance(29)
    #expect(!room[0].isClosed)
    room[0].receive("\r\n")  // ended in time: nothing pending, nothing to time out
    room.clock.advance(100)
    #expect(!room[0].isClosed)
    #expect(room.lines(1) == ["<guest-1> abc", "<guest-1> xyz"])
    room[0].receive("q")
    room.clock.advance(30.01)
    #expect(room[0].closeReason == .timedOut)
  }

  @Test("past maxConnections a user is told 'Too many connections, try later' and closed, unseen by the room")
  func maxConnections() {
    let room = Room(ChatFactory(maxConnections: 2), users: 2)
    defer { room.closeAll() }
    let third = room.join()
    #expect(third.writtenString == "Too many connections, try later\r\n")
    #expect(third.closeReason == .closedByUs)
    #expect(room.lines(0) == [] && room.lines(1) == [])
    #expect(room.factory.nicknames == ["guest-1", "guest-2"])
    #expect(room.factory.counters.refused == 1)
    room[0].receive("/quit\r\n")
    let fourth = room.join()
    #expect(fourth.writtenString.hasPrefix("* welcome, guest-3"))
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
