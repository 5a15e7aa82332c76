import TwineCore
import TwineProtocols

/// One chat user (the classic Twisted chat): every line is sent to everyone else as
/// `<nick> line`; `/nick NAME` renames, `/quit` leaves. New users are `guest-N`.
///
/// Safe against a hostile or slow peer: a line over ``ChatFactory/maxLineLength`` drops
/// only its sender (`.protocolError`); a user whose unread output passes
/// ``ChatFactory/maxPendingBytes`` is disconnected (`.bufferOverflow`) while the others go on;
/// control characters are replaced by `?` before a line is relayed, so no one can send
/// terminal escapes to the others.
public final class ChatProtocol: LineReceiver, TimeoutMixin {
  /// The idle timer behind ``ChatFactory/idleTimeout``.
  public let idleTimer = IdleTimer()

  /// This user's nick while connected.
  public private(set) var nick = ""

  /// The room this user is in (``ChatFactory`` builds each user with itself as the room),
  /// or nil for a user made by `init()`, which is closed as soon as it connects.
  public let room: ChatFactory?

  /// A user of `room`.
  public init(room: ChatFactory) {
    self.room = room
    super.init()
  }

  /// A user with no room: it closes as soon as it connects.
  public required init() {
    room = nil
    super.init()
  }

  /// Joins the room: greets, tells the others, starts the idle timeout.
  public override func connectionMade() {
    guard let room else {
      transport.loseConnection()
      return
    }
    maxLength = room.maxLineLength
    let limit = room.maxPendingBytes
    transport.writeBufferLimits = WriteBufferLimits(lowWater: limit / 4, highWater: limit / 2, hardLimit: limit)
    nick = room.join(self)
    sendLine("* welcome, \(nick); /nick NAME to rename, /quit to leave")
    room.broadcast("* \(nick) joined", from: self)
    if let idle = room.idleTimeout { setTimeout(idle) }
  }

  /// Any bytes from the user count as activity.
  public override func dataReceived(_ data: RawSpan) {
    resetTimeout()
    super.dataReceived(data)
  }

  /// A command, or a message for everyone else.
  public override func lineReceived(_ line: RawSpan) {
    guard let room, line.byteCount > 0 else { return }
    let bytes = line.bytes
    guard bytes.first == UInt8(ascii: "/") else {
      room.broadcast(Array("<\(nick)> ".utf8) + ChatFactory.printable(bytes), from: self)
      return
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let command = text.prefix { $0 != " " }
    switch command {
    case "/nick":
      rename(to: Array(bytes.dropFirst(command.utf8.count + 1)))
    case "/quit":
      sendLine("* bye")
      transport.loseConnection()
    default:
      sendLine("! unknown command \(ChatFactory.printableText(command)); try /nick NAME or /quit")
    }
  }

  /// Leaves the room and tells the others why.
  public override func connectionLost(_ reason: CloseReason) {
    setTimeout(nil)
    room?.leave(self, reason: reason)
  }

  /// Says why, then closes as ``TimeoutMixin`` does by default.
  public func timeoutConnection() {
    sendLine("* idle for \(Int(timeout ?? 0)) s, bye")
    if transport.pendingWriteCount == 0 {
      transport.loseConnection(reason: .timedOut)
    } else {
      transport.abortConnection()
    }
  }

  private func rename(to name: [UInt8]) {
    guard let room else { return }
    switch room.rename(self, to: name) {
    case .success(let old):
      nick = String(decoding: name, as: UTF8.self)
      sendLine("* you are now \(nick)")
      room.broadcast("* \(old) is now \(nick)", from: self)
    case .failure(let error):
      sendLine("! \(error)")
    }
  }
}

/// Why `/nick NAME` was refused; the text is what the user sees.
public enum NickError: Error, Equatable, CustomStringConvertible {
  /// Empty, or more than ``ChatFactory/maxNickLength`` bytes.
  case badLength
  /// Not UTF-8, or holds a space, a control or an invisible character.
  case notPrintable
  /// Someone else has it.
  case taken(String)

  /// The error line's text.
  public var description: String {
    switch self {
    case .badLength: "a nick is 1 to \(ChatFactory.maxNickLength) bytes: /nick NAME"
    case .notPrintable: "a nick may hold only printable characters, no spaces"
    case .taken(let nick): "nick \(nick) is taken"
    }
  }
}

/// The chat room: the users, their nicks, and the limits every connection shares.
public final class ChatFactory: Factory {
  /// The longest nick, in bytes.
  public static let maxNickLength = 32

  /// The longest line a user may send, in bytes; a longer one drops that user.
  public let maxLineLength: Int
  /// Unread output a user may have queued before being dropped (default 256 KiB).
  public let maxPendingBytes: Int
  /// Seconds of silence after which a user is dropped, or nil for never.
  public let idleTimeout: Double?

  /// The users, in the order they joined.
  public private(set) var users: [ChatProtocol] = []
  private var nicks: Set<String> = []
  private var guests = 0

  /// Makes a room with the given limits.
  public init(maxLineLength: Int = 4096, maxPendingBytes: Int = 256 << 10, idleTimeout: Double? = nil) {
    self.maxLineLength = maxLineLength
    self.maxPendingBytes = maxPendingBytes
    self.idleTimeout = idleTimeout
    super.init(ChatProtocol.self)
  }

  /// A new user of this room, with this factory as its ``Protocol/factory``.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    let user = ChatProtocol(room: self)
    user.factory = self
    return user
  }

  /// The nicks in use, in joining order.
  public var nicknames: [String] { users.map(\.nick) }

  /// Adds `user`; returns its guest nick.
  func join(_ user: ChatProtocol) -> String {
    var nick: String
    repeat {
      guests += 1
      nick = "guest-\(guests)"
    } while nicks.contains(nick)
    nicks.insert(nick)
    users.append(user)
    return nick
  }

  /// Removes `user` and tells the others, with the reason when it is not a plain goodbye.
  func leave(_ user: ChatProtocol, reason: CloseReason) {
    guard let index = users.firstIndex(where: { $0 === user }) else { return }
    users.remove(at: index)
    nicks.remove(user.nick)
    let why: String
    switch reason {
    case .closedByUs, .closedByPeer: why = ""
    case .bufferOverflow: why = " (too slow: output queue full)"
    case .timedOut: why = " (idle)"
    default: why = " (\(reason))"
    }
    broadcast("* \(user.nick) left\(why)", from: user)
  }

  /// Gives `user` the nick `name`, or says why not; returns the old nick.
  func rename(_ user: ChatProtocol, to name: [UInt8]) -> Result<String, NickError> {
    guard (1...Self.maxNickLength).contains(name.count) else { return .failure(.badLength) }
    guard let nick = String(validating: name, as: UTF8.self), Self.isPrintableWord(nick) else {
      return .failure(.notPrintable)
    }
    guard nick == user.nick || !nicks.contains(nick) else { return .failure(.taken(nick)) }
    let old = user.nick
    nicks.remove(old)
    nicks.insert(nick)
    return .success(old)
  }

  /// Sends `line` to every user but `sender`. A user dropped meanwhile (too slow) is skipped.
  public func broadcast(_ line: [UInt8], from sender: ChatProtocol?) {
    for user in users where user !== sender && user.connected {
      user.sendLine(line)
    }
  }

  /// Sends the UTF-8 bytes of `line` to every user but `sender`.
  public func broadcast(_ line: String, from sender: ChatProtocol?) {
    broadcast(Array(line.utf8), from: sender)
  }

  /// `bytes` with ASCII control characters (but tab) and DEL replaced by `?`.
  static func printable(_ bytes: [UInt8]) -> [UInt8] {
    bytes.map { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F ? UInt8(ascii: "?") : $0 }
  }

  /// `text` with control characters replaced by `?`.
  static func printableText(_ text: some StringProtocol) -> String {
    String(decoding: printable(Array(text.utf8)), as: UTF8.self)
  }

  private static func isPrintableWord(_ nick: String) -> Bool {
    nick.unicodeScalars.allSatisfy { scalar in
      switch scalar.properties.generalCategory {
      case .control, .format, .lineSeparator, .paragraphSeparator, .spaceSeparator, .surrogate, .privateUse,
        .unassigned:
        false
      default:
        !scalar.properties.isWhitespace
      }
    }
  }
}
