import CLibevent
import Glibc
import LoopbackTestSupport
import Testing

@testable import Twine

/// The chat's shape over real sockets: every loss writes to everyone else, whose peers
/// never read, so each notice overflows the others and drops them in turn.
private final class Room {
  var members: [Member] = []
  var nesting = 0
  var deepest = 0
  var lost: [CloseReason] = []
  var onAllLost: () -> Void = {}
}

private final class Member: Protocol {
  let room: Room
  init(room: Room) {
    self.room = room
    super.init()
  }
  required init() { fatalError("built by the test") }

  override func connectionMade() {
    // Small kernel buffers, so the queue (and its hard limit) takes the notices at once.
    if let connection = transport as? TCPConnection {
      try? Syscall.setOption(connection.fd, SOL_SOCKET, SO_SNDBUF, Int32(4096))
    }
    transport.writeBufferLimits = WriteBufferLimits(lowWater: 4 << 10, highWater: 8 << 10, hardLimit: 16 << 10)
    room.members.append(self)
  }

  override func connectionLost(_ reason: CloseReason) {
    room.nesting += 1
    room.deepest = max(room.deepest, room.nesting)
    room.lost.append(reason)
    let notice = [UInt8](repeating: UInt8(ascii: "!"), count: 256 << 10)
    for other in room.members where other !== self { other.transport.write(notice) }
    room.nesting -= 1
    if room.lost.count == room.members.count { room.onAllLost() }
  }
}

/// A client that never reads.
private final class Deaf: Protocol {
  override func connectionMade() {
    if let connection = transport as? TCPConnection {
      try? Syscall.setOption(connection.fd, SOL_SOCKET, SO_RCVBUF, Int32(2048))
    }
    transport.pauseProducing()
  }
}

@Suite("Closes never nest, over loopback")
struct CloseCascadeLoopbackTests {
  @Test("one drop that overflows 300 never-reading peers closes them one after another, not one inside another")
  func cascadeOverLoopback() throws {
    let count = 300
    let reactor = try Reactor()
    let room = Room()
    room.onAllLost = { reactor.stop() }
    let server = Factory { _ in Member(room: room) }
    let port = try listen(reactor, server)
    let clients = ClientFactory { _ in Deaf() }
    for _ in 0..<count { reactor.connectTCP("127.0.0.1", port, factory: clients) }
    var poll: (() -> Void)?
    poll = {
      if room.members.count == count {
        room.members[0].transport.abortConnection()  // from a timer: outside every callback
      } else {
        reactor.callLater(0.01) { poll?() }
      }
    }
    reactor.callLater(0.01) { poll?() }
    run(reactor, timeout: 60)
    poll = nil
    defer {
      // The room's callback holds the reactor, and the reactor's port holds the room: let go.
      room.onAllLost = {}
      room.members = []
      reactor.shutdown()
    }
    #expect(room.lost.count == count)
    #expect(room.lost.filter { $0 == .bufferOverflow }.count == count - 1)
    #expect(room.deepest == 1, "connectionLost ran inside another connection's connectionLost")
    #expect(server.counters.live == 0)
    #expect(reactor.closes.count == 0)
  }
}

@Suite("A closed connection's scheduler")
struct ClosedSchedulerTests {
  @Test("after the reactor is gone, a kept transport's scheduler schedules nothing (no use of the freed reactor)")
  func schedulerAfterReactorFreed() throws {
    final class Keeper: Protocol {}
    let keeper = Keeper()
    do {
      let reactor = try Reactor()
      let server = Factory { _ in keeper }
      let port = try listen(reactor, server)
      let clients = ClientMaker()
      clients.configure = { $0.done = { _ in reactor.stop() } }
      reactor.connectTCP("127.0.0.1", port, factory: clients)
      reactor.callLater(0.2) { reactor.stop() }
      reactor.run()
      #expect(keeper.transport != nil)
      reactor.shutdown()
    }
    let call = keeper.transport.scheduler.callLater(0) { Issue.record("ran on a closed connection") }
    #expect(!call.isActive)
  }
}

@Suite("A close from a timer")
struct TimerCloseTests {
  @Test("abortConnection inside a timer: connectionLost runs after the timer's body returns, from the close queue")
  func closeFromTimerWaitsForTheBody() throws {
    final class Watched: Protocol {
      var onLost: () -> Void = {}
      override func connectionLost(_ reason: CloseReason) { onLost() }
    }
    let reactor = try Reactor()
    var watched: Watched?
    var insideTimer = false
    var lostInsideTimer: Bool?
    let server = Factory { _ in
      let made = Watched()
      made.onLost = {
        lostInsideTimer = insideTimer
        reactor.stop()
      }
      watched = made
      return made
    }
    let port = try listen(reactor, server)
    let clients = ClientMaker()
    reactor.connectTCP("127.0.0.1", port, factory: clients)
    func tick() {
      reactor.callLater(0.01) {
        guard let connection = watched else { return tick() }
        insideTimer = true
        connection.transport.abortConnection()
        insideTimer = false
      }
    }
    tick()
    run(reactor)
    watched = nil
    #expect(lostInsideTimer == false, "connectionLost ran inside the timer's body")
    reactor.shutdown()
  }
}
