import Synchronization
import TwineCore

/// What the rooms of one chat on several reactors share (`twine chat --threads N`): the
/// nicks, the user limit and a door to each room's reactor. Each reactor has its own
/// ``ChatFactory`` (its room, touched only on its thread); a line is delivered to the local
/// users at once and posted to every other room, which delivers it on its own thread.
/// Each room's door is a FIFO queue, so lines from one sender arrive everywhere in order.
///
/// ```swift
/// let hub = ChatHub(maxConnections: 1000)
/// // on each reactor: ChatFactory(hub: hub, post: { body in reactor.crossThread.callFromThread(body) })
/// ```
public final class ChatHub: Sendable {
  /// Runs `body` on a room's reactor thread, after what was posted before (a reactor's cross-thread door).
  public typealias Post = @Sendable (_ body: @escaping @Sendable () -> Void) -> Void

  /// Users served at once over every room; the next is refused.
  public let slots: ConnectionSlots

  private struct Names {
    var nicks: Set<String> = []
    var guests = 0
  }
  private let names = LockedValue(Names())
  private let doors = LockedValue<[RoomDoor]>([])
  private let lastUserID = Atomic<Int>(0)

  /// Makes a hub for rooms that serve at most `maxConnections` users together.
  public init(maxConnections: Int = 1000) {
    slots = ConnectionSlots(limit: maxConnections)
  }

  /// Adds `room`, reached through `post` (nil: a room alone, never posted to); returns its door.
  func attach(_ room: ChatFactory, post: Post?) -> RoomDoor {
    doors.withLock { doors in
      let door = RoomDoor(index: doors.count, room: room, post: post)
      doors.append(door)
      return door
    }
  }

  /// Runs `body` with every room but `door`'s, each on its own reactor.
  func others(than door: RoomDoor, _ body: @escaping @Sendable (ChatFactory) -> Void) {
    let all = doors.withLock { $0 }
    guard all.count > 1 else { return }
    for other in all where other !== door { other.send(body) }
  }

  /// Runs `body` with room `index`, on its reactor.
  func room(_ index: Int, _ body: @escaping @Sendable (ChatFactory) -> Void) {
    let door = doors.withLock { index < $0.count ? $0[index] : nil }
    door?.send(body)
  }

  /// A number no other user of any room has.
  func newUserID() -> Int { lastUserID.add(1, ordering: .relaxed).newValue }

  /// The next free `guest-N`, taken.
  func takeGuestNick() -> String {
    names.withLock { names in
      var nick: String
      repeat {
        names.guests += 1
        nick = "guest-\(names.guests)"
      } while names.nicks.contains(nick)
      names.nicks.insert(nick)
      return nick
    }
  }

  /// Takes `nick` in place of `old`, unless another user has it.
  func rename(_ old: String, to nick: String) -> Bool {
    names.withLock { names in
      guard nick == old || !names.nicks.contains(nick) else { return false }
      names.nicks.remove(old)
      names.nicks.insert(nick)
      return true
    }
  }

  /// Frees `nick`.
  func drop(_ nick: String) {
    _ = names.withLock { $0.nicks.remove(nick) }
  }
}

/// How a hub reaches one room: its reactor's door, and the room, touched only inside
/// bodies run through that door (on the room's own thread) — hence `@unchecked`.
final class RoomDoor: @unchecked Sendable {
  /// The room's place in its hub.
  let index: Int
  private weak var room: ChatFactory?
  private let post: ChatHub.Post?

  init(index: Int, room: ChatFactory, post: ChatHub.Post?) {
    self.index = index
    self.room = room
    self.post = post
  }

  /// Runs `body` with the room on its reactor (nothing once the room is gone).
  func send(_ body: @escaping @Sendable (ChatFactory) -> Void) {
    post? { [self] in
      if let room { body(room) }
    }
  }
}

/// Who sent a line: a user of this room, or of another room (known by number only).
enum ChatSender {
  case local(ChatProtocol)
  case remote(room: Int, user: Int)
}
