import Testing
import TwineTesting

/// A room whose members tell everyone else when one leaves (the chat's shape): each loss
/// writes to the others, and a reader that does not read overflows and is dropped too.
private final class Room {
  var members: [Member] = []
  var nesting = 0
  var deepest = 0
  var lost = 0
}

private final class Member: Protocol {
  let room: Room
  init(room: Room) {
    self.room = room
    super.init()
  }
  required init() { fatalError("built by the test") }

  override func connectionLost(_ reason: CloseReason) {
    room.nesting += 1
    room.deepest = max(room.deepest, room.nesting)
    room.lost += 1
    let notice = [UInt8](repeating: UInt8(ascii: "!"), count: 1_200)
    for other in room.members where other !== self { other.transport.write(notice) }
    room.nesting -= 1
  }
}

@Suite("Closes never nest")
struct CloseCascadeTests {
  @Test("a loss that overflows every other member's queue drops them one after another, never one inside another")
  func cascadeIsIterative() {
    let clock = ManualClock()
    let room = Room()
    let limits = WriteBufferLimits(lowWater: 100, highWater: 500, hardLimit: 1000)
    var transports: [StringTransport] = []
    for _ in 0..<2_000 {
      let transport = StringTransport(clock: clock)
      transport.holdWrites = true  // a peer that never reads
      let member = Member(room: room)
      transport.connect(member)
      transport.writeBufferLimits = limits
      room.members.append(member)
      transports.append(transport)
    }
    defer { room.members = [] }  // each member holds the room: let go of the cycle
    transports[0].abortConnection()
    #expect(room.lost == 2_000)
    #expect(room.deepest == 1, "connectionLost ran inside another connectionLost")
    #expect(transports.allSatisfy { $0.closeReason != nil })
    #expect(transports.dropFirst().allSatisfy { $0.closeReason == .bufferOverflow })
    #expect(clock.closes.count == 0)
  }

  @Test("a close asked for inside a callback of another connection waits for that callback to end")
  func closeWaitsForTheCallback() {
    let clock = ManualClock()
    let a = StringTransport(clock: clock)
    let b = StringTransport(clock: clock)
    let other = Protocol()
    b.connect(other)
    final class Closer: Protocol {
      var victim: StringTransport?
      var victimClosedInside: Bool?
      override func dataReceived(_ data: RawSpan) {
        victim?.abortConnection()
        victimClosedInside = victim?.isClosed
      }
    }
    let closer = Closer()
    closer.victim = b
    a.connect(closer)
    a.receive("x")
    #expect(closer.victimClosedInside == false)
    #expect(b.closeReason == .aborted)
    a.loseConnection()
  }
}
