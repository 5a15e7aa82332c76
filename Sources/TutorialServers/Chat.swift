import TwineCore
import TwineProtocols

/// One chat user (the classic Twisted chat): every line is sent to everyone else as
/// `<nick> line`; `/nick NAME` renames, `/quit` leaves. New users are `guest-N`.
///
/// Safe against a hostile or slow peer, dropping only that peer:
/// - a line over ``ChatFactory/maxLineLength``, or one not finished within
///   ``ChatFactory/lineTimeout``, drops its sender;
/// - fairness: a user whose unread output passes ``ChatFactory/pauseMark`` is *backlogged*
///   until it drains to ``ChatFactory/resumeMark``; a sender that puts more than
///   ``ChatFactory/senderAllowance`` bytes into a backlogged user's queue stops being read
///   until every such queue has drained (or its reader left). So a flooder goes at the pace
///   of the slowest reader, and a reader that keeps reading is never dropped for it;
/// - a backlogged user that reads nothing for ``ChatFactory/stallTimeout`` is dropped, and
///   one whose queue passes ``ChatFactory/maxPendingBytes`` anyway (`.bufferOverflow`);
/// - control characters and invalid UTF-8 (``ChatText``) are relayed as `?`.
public final class ChatProtocol: LineReceiver, TimeoutMixin {
  /// The idle timer behind ``ChatFactory/idleTimeout``.
  public let idleTimer = IdleTimer()

  /// This user's nick while connected.
  public private(set) var nick = ""

  /// The room this user is in (``ChatFactory`` builds each user with itself as the room),
  /// or nil for a user made by `init()`, which is closed as soon as it connects.
  public let room: ChatFactory?

  /// True while this user's unread output is past ``ChatFactory/pauseMark`` and has not
  /// drained to ``ChatFactory/resumeMark`` since.
  public private(set) var isBacklogged = false

  /// True while this user's input is held because it filled a backlogged user's queue.
  public var isHeldBack: Bool { !blockers.isEmpty }

  /// This user's number, unique over every room of its hub (set when it joins).
  public private(set) var userID = 0
  /// True while this user holds one of the hub's slots (from its building until it leaves).
  var holdsSlot = false

  /// Bytes written to this user's transport, so `written - pendingWriteCount` is what it has read.
  private var written = 0
  /// While backlogged: bytes each sender (by ``userID``) put into this queue since it became backlogged.
  private var sentWhileBacklogged: [Int: Int] = [:]
  /// The backlogged users (by ``userID``, in any room) whose queues this user filled; it
  /// is read again once this is empty.
  private var blockers: Set<Int> = []
  private var stallCheck: (any ScheduledCall)?
  private var drainedAtCheck = 0
  private var lastProgress = 0.0
  /// When the unfinished line held now began, or nil.
  private var lineStart: Double?
  private var lineCheck: (any ScheduledCall)?
  private var completedLine = false
  /// What the others are told in `* NICK left (...)`, when the reason alone would not say.
  private var leaveNote: String?

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

  // Built but never connected (its socket failed first): the slot still goes back.
  deinit { if holdsSlot { room?.hub.slots.release() } }

  /// Joins the room, or refuses past ``ChatFactory/maxConnections`` (``ChatFactory`` took a
  /// slot when it built this user; one built otherwise takes it here): greets, tells the
  /// others, sets the output marks and starts the idle timeout.
  public override func connectionMade() {
    guard let room else {
      transport.loseConnection()
      return
    }
    if !holdsSlot {
      guard room.hub.slots.reserve() else {
        factory?.counters.noteRefused()
        transport.write(CountingEcho.refusal + "\r\n")
        transport.loseConnection()
        return
      }
      holdsSlot = true
    }
    maxLength = room.maxLineLength
    transport.writeBufferLimits = WriteBufferLimits(
      lowWater: room.resumeMark, highWater: room.pauseMark, hardLimit: room.maxPendingBytes)
    transport.registerProducer(OutputWatch(self))
    (userID, nick) = room.join(self)
    tell("* welcome, \(nick); /nick NAME to rename, /quit to leave")
    room.broadcast("* \(nick) joined", from: self)
    if let idle = room.idleTimeout { setTimeout(idle) }
  }

  /// Any bytes from the user count as activity; a line left unfinished starts the line timeout.
  public override func dataReceived(_ data: RawSpan) {
    resetTimeout()
    completedLine = false
    super.dataReceived(data)
    noteUnfinishedLine()
  }

  /// A command, or a message for everyone else.
  public override func lineReceived(_ line: RawSpan) {
    completedLine = true
    guard let room, line.byteCount > 0 else { return }
    let bytes = line.bytes
    guard bytes.first == UInt8(ascii: "/") else {
      room.broadcast(Array("<\(nick)> ".utf8) + ChatText.clean(bytes), from: self)
      return
    }
    let text = String(decoding: ChatText.clean(bytes), as: UTF8.self)
    let command = text.prefix { $0 != " " }
    switch command {
    case "/nick":
      rename(to: Array(bytes.dropFirst(command.utf8.count + 1)))
    case "/quit":
      tell("* bye")
      transport.loseConnection()
    default:
      tell("! unknown command \(command); try /nick NAME or /quit")
    }
  }

  /// Leaves the room and tells the others why.
  public override func connectionLost(_ reason: CloseReason) {
    setTimeout(nil)
    stallCheck?.cancel()
    lineCheck?.cancel()
    room?.leave(self, reason: reason, note: leaveNote)
    if holdsSlot {
      holdsSlot = false
      room?.hub.slots.release()
    }
  }

  /// The server is draining: says so and leaves once what is queued has gone.
  public override func connectionDraining() {
    leaveNote = "(server shutting down)"
    tell("* server shutting down, bye")
    transport.loseConnection()
  }

  /// Says why, then closes as ``TimeoutMixin`` does by default.
  public func timeoutConnection() {
    close(saying: "* idle for \(Int(timeout ?? 0)) s, bye", note: "(idle)")
  }

  /// Sends `line` (already cleaned) to this user, counting it against `sender` while
  /// this user is backlogged; holds `sender` back once it passed its allowance here.
  func deliver(_ line: [UInt8], from sender: ChatProtocol?) {
    deliver(line, from: sender.map(ChatSender.local))
  }

  /// Sends `line` to this user; `sender` may be a user of another room (reactor), which the
  /// room then holds back through that room's door.
  func deliver(_ line: [UInt8], from sender: ChatSender?) {
    guard connected, !transport.disconnecting else { return }
    sendLine(line)
    written += line.count + delimiter.count
    guard isBacklogged, connected, let sender, let room else { return }
    let id: Int
    switch sender {
    case .local(let user):
      guard user.connected else { return }
      id = user.userID
    case .remote(_, let user):
      id = user
    }
    let total = sentWhileBacklogged[id, default: 0] + line.count + delimiter.count
    sentWhileBacklogged[id] = total
    if total > room.senderAllowance { room.holdBack(sender, for: userID) }
  }

  /// Forgets what the user numbered `sender` put into this queue (it left).
  func forget(_ sender: Int) {
    sentWhileBacklogged[sender] = nil
  }

  /// The user numbered `receiver` drained or left: reads this user again, from the loop,
  /// once nothing holds it back.
  func release(from receiver: Int) {
    guard blockers.remove(receiver) != nil, blockers.isEmpty, connected else { return }
    // From the loop, not inside the receiver's callback: delivering held lines writes to others.
    transport.scheduler.callLater(0) { [weak self] in
      guard let self, self.connected, self.blockers.isEmpty, self.isPaused else { return }
      self.resumeProducing()
      self.lineStart = nil  // time spent held back by the room does not count against a line
      self.noteUnfinishedLine()
    }
  }

  // MARK: Fairness and timeouts

  private func tell(_ text: String) { deliver(Array(text.utf8), from: self) }

  /// Stops reading this user until the user numbered `receiver` (in any room) drains.
  func holdBack(for receiver: Int) {
    guard connected else { return }
    blockers.insert(receiver)
    if !isPaused { pauseProducing() }
  }

  /// The transport found the queue past the pause mark.
  fileprivate func outputBacklogged() {
    guard connected, !isBacklogged, let room else { return }
    isBacklogged = true
    sentWhileBacklogged = [:]
    drainedAtCheck = written - transport.pendingWriteCount
    lastProgress = transport.scheduler.now
    stallCheck?.cancel()
    stallCheck = transport.scheduler.callLater(room.stallTimeout / 8) { [weak self] in self?.checkProgress() }
  }

  /// The transport found the queue drained to the resume mark.
  fileprivate func outputDrained() {
    guard isBacklogged else { return }
    isBacklogged = false
    sentWhileBacklogged = [:]
    stallCheck?.cancel()
    stallCheck = nil
    room?.released(by: userID)
  }

  /// While backlogged: drops this user once it has read nothing for the stall timeout.
  private func checkProgress() {
    stallCheck = nil
    guard connected, isBacklogged, let room else { return }
    let now = transport.scheduler.now
    let drained = written - transport.pendingWriteCount
    if drained != drainedAtCheck {
      drainedAtCheck = drained
      lastProgress = now
    } else if now - lastProgress >= room.stallTimeout * 0.999 {
      leaveNote = "(too slow: read nothing for \(ChatFactory.seconds(room.stallTimeout)) s)"
      transport.abortConnection(reason: .timedOut)
      return
    }
    stallCheck = transport.scheduler.callLater(room.stallTimeout / 8) { [weak self] in self?.checkProgress() }
  }

  /// After a read: starts the line timeout when an unfinished line is held, stops it when none is.
  private func noteUnfinishedLine() {
    guard let limit = room?.lineTimeout, connected, !transport.disconnecting, !isPaused else { return }
    guard bufferedByteCount > 0 else {
      lineStart = nil
      return
    }
    if lineStart == nil || completedLine { lineStart = transport.scheduler.now }
    if lineCheck?.isActive != true {
      lineCheck = transport.scheduler.callLater(limit) { [weak self] in self?.checkLine() }
    }
  }

  private func checkLine() {
    lineCheck = nil
    guard let limit = room?.lineTimeout, connected, !isPaused, let start = lineStart else { return }
    let left = start + limit - transport.scheduler.now
    if left > 0.001 {
      lineCheck = transport.scheduler.callLater(left) { [weak self] in self?.checkLine() }
      return
    }
    close(saying: "* line timeout (no end of line in \(ChatFactory.seconds(limit)) s), bye", note: "(line timeout)")
  }

  /// Says `text`, then closes: cleanly when nothing is queued, else at once (a peer that
  /// does not read may never take the rest).
  private func close(saying text: String, note: String) {
    leaveNote = note
    tell(text)
    if transport.pendingWriteCount == 0 {
      transport.loseConnection(reason: .timedOut)
    } else {
      transport.abortConnection(reason: .timedOut)
    }
  }

  private func rename(to name: [UInt8]) {
    guard let room else { return }
    switch room.rename(self, to: name) {
    case .success(let old):
      nick = String(decoding: name, as: UTF8.self)
      tell("* you are now \(nick)")
      room.broadcast("* \(old) is now \(nick)", from: self)
    case .failure(let error):
      tell("! \(error)")
    }
  }
}

/// Registered as the producer on each user's transport, so the transport tells the user
/// when its output passes the pause mark and drains to the resume mark (and never pauses
/// the user's own reading for it).
private final class OutputWatch: PushProducer {
  private weak var user: ChatProtocol?
  init(_ user: ChatProtocol) { self.user = user }
  func pauseProducing() { user?.outputBacklogged() }
  func resumeProducing() { user?.outputDrained() }
  func stopProducing() {}
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
  /// The hard cap: unread output past it drops its user (`.bufferOverflow`) (default 1 MiB).
  public let maxPendingBytes: Int
  /// Unread output past which a user is backlogged: ``maxPendingBytes`` / 8 (128 KiB).
  public let pauseMark: Int
  /// Unread output at or below which a backlogged user is not any more: ``pauseMark`` / 4 (32 KiB).
  public let resumeMark: Int
  /// Bytes one sender may add to a backlogged user's queue before it is held back:
  /// ``resumeMark`` (32 KiB), far above what a person types while a reader catches up.
  public let senderAllowance: Int
  /// Seconds a backlogged user may read nothing before it is dropped (default 10; checked
  /// every eighth of it, so the drop comes 1 to 1.25 times this after its last byte read).
  public let stallTimeout: Double
  /// Seconds a line may take from its first byte to its end before its sender is dropped, or nil for never.
  public let lineTimeout: Double?
  /// Users served at once (over every room of the ``hub``); the next is told
  /// ``CountingEcho/refusal`` and closed (default 1,000).
  public var maxConnections: Int { hub.slots.limit }
  /// What this room shares with the rooms of the same chat on other reactors (its own, alone).
  public let hub: ChatHub
  /// How the hub reaches this room.
  private var door: RoomDoor!
  /// Seconds of silence after which a user is dropped, or nil for never.
  public let idleTimeout: Double?

  /// The users, in the order they joined.
  public private(set) var users: [ChatProtocol] = []

  /// Makes a room with the given limits. With a `hub`, the room is one of several (one per
  /// reactor) that make one chat: `post` runs a body on this room's reactor thread, the
  /// hub's limit replaces `maxConnections`, and `counters` are usually a stripe of the chat's.
  public init(
    maxLineLength: Int = 4096, maxPendingBytes: Int = 1 << 20, idleTimeout: Double? = nil,
    stallTimeout: Double = 10, lineTimeout: Double? = 30, maxConnections: Int = 1000,
    hub: ChatHub? = nil, post: ChatHub.Post? = nil, counters: ConnectionCounters = ConnectionCounters()
  ) {
    self.maxLineLength = maxLineLength
    self.maxPendingBytes = max(1, maxPendingBytes)
    pauseMark = max(1, maxPendingBytes / 8)
    resumeMark = pauseMark / 4
    senderAllowance = max(1, resumeMark)
    self.stallTimeout = stallTimeout
    self.lineTimeout = lineTimeout
    self.idleTimeout = idleTimeout
    self.hub = hub ?? ChatHub(maxConnections: maxConnections)
    super.init(ChatProtocol.self, counters: counters)
    door = self.hub.attach(self, post: post)
  }

  /// A new user of this room holding one of the hub's slots, with this factory as its
  /// ``Protocol/factory``; with no slot free, a protocol that says ``CountingEcho/refusal`` and closes.
  public override func buildProtocol(_ peer: SocketAddress) -> Protocol? {
    guard hub.slots.reserve() else {
      let refusal = ChatRefusal()
      refusal.factory = self
      return refusal
    }
    let user = ChatProtocol(room: self)
    user.holdsSlot = true
    user.factory = self
    return user
  }

  /// The nicks in use, in joining order.
  public var nicknames: [String] { users.map(\.nick) }

  /// Adds `user`; returns its number and guest nick.
  func join(_ user: ChatProtocol) -> (Int, String) {
    users.append(user)
    return (hub.newUserID(), hub.takeGuestNick())
  }

  /// Removes `user` and tells the others why (`note`, else the reason when it is not a
  /// plain goodbye); reads again the users it held back.
  func leave(_ user: ChatProtocol, reason: CloseReason, note: String? = nil) {
    guard let index = users.firstIndex(where: { $0 === user }) else { return }
    users.remove(at: index)
    hub.drop(user.nick)
    let why: String
    switch (note, reason) {
    case (let note?, _): why = " \(note)"
    case (nil, .closedByUs), (nil, .closedByPeer): why = ""
    case (nil, .bufferOverflow): why = " (too slow: output queue full)"
    case (nil, .timedOut): why = " (idle)"
    default: why = " (\(reason))"
    }
    let gone = user.userID
    for other in users { other.forget(gone) }
    hub.others(than: door) { room in room.users.forEach { $0.forget(gone) } }
    released(by: gone)
    broadcast("* \(user.nick) left\(why)", from: user)
  }

  /// The user numbered `receiver` drained or left: every sender it held back, in every room, may be read again.
  func released(by receiver: Int) {
    for user in users { user.release(from: receiver) }
    hub.others(than: door) { room in room.users.forEach { $0.release(from: receiver) } }
  }

  /// `receiver` (a user of this room) filled its queue past the allowance with `sender`'s
  /// lines: stops reading `sender`, through its room's door when it is in another room.
  func holdBack(_ sender: ChatSender, for receiver: Int) {
    switch sender {
    case .local(let user): user.holdBack(for: receiver)
    case .remote(let room, let user):
      hub.room(room) { room in room.users.first { $0.userID == user }?.holdBack(for: receiver) }
    }
  }

  /// Gives `user` the nick `name`, or says why not; returns the old nick.
  func rename(_ user: ChatProtocol, to name: [UInt8]) -> Result<String, NickError> {
    guard (1...Self.maxNickLength).contains(name.count) else { return .failure(.badLength) }
    guard Self.isNick(name) else { return .failure(.notPrintable) }
    let nick = String(decoding: name, as: UTF8.self)
    guard hub.rename(user.nick, to: nick) else { return .failure(.taken(nick)) }
    return .success(user.nick)
  }

  /// Sends `line` to every user but `sender`, in this room and (through the hub) in every
  /// other. A user dropped meanwhile (too slow) is skipped.
  public func broadcast(_ line: [UInt8], from sender: ChatProtocol?) {
    for user in users where user !== sender && user.connected {
      user.deliver(line, from: sender)
    }
    let origin = door.index
    let senderID = sender?.userID
    hub.others(than: door) { room in
      let remote = senderID.map { ChatSender.remote(room: origin, user: $0) }
      for user in room.users where user.connected { user.deliver(line, from: remote) }
    }
  }

  /// Sends the UTF-8 bytes of `line` to every user but `sender`.
  public func broadcast(_ line: String, from sender: ChatProtocol?) {
    broadcast(Array(line.utf8), from: sender)
  }

  /// True for a nick: what ``ChatText/clean(_:)`` leaves unchanged (valid UTF-8, no
  /// control), and besides no space, separator, format, private-use or unassigned character.
  private static func isNick(_ name: [UInt8]) -> Bool {
    guard ChatText.isClean(name) else { return false }
    return String(decoding: name, as: UTF8.self).unicodeScalars.allSatisfy { scalar in
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

extension ChatFactory {
  /// `value` seconds as text: `10`, or `0.5`.
  static func seconds(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
  }
}

/// Says ``CountingEcho/refusal`` to a user past ``ChatFactory/maxConnections``, counts it
/// refused and closes; the room never sees it.
private final class ChatRefusal: Protocol {
  override func connectionMade() {
    factory?.counters.noteRefused()
    transport.write(CountingEcho.refusal + "\r\n")
    transport.loseConnection()
  }
}
