import TutorialServers
import Twine

/// `twine chat --threads N`: one room per reactor, joined by a ``ChatHub`` into one chat.
extension ChatCommand {
  /// Serves the chat on `threading.count` reactors; a line reaches the users of every one.
  func runGroup() throws {
    let threads = threading.count
    let hub = ChatHub(maxConnections: maxConnections)
    let counters = ConnectionCounters(stripes: threads)
    let (lineLength, pending, stall, line) = (maxLineLength, maxPendingBytes, stallTimeout, lineTimeout)
    let idle = idleTimeout > 0 ? idleTimeout : nil
    try serveGroup(options, threads: threads, counters: counters) { home in
      ChatFactory(
        maxLineLength: lineLength, maxPendingBytes: pending, idleTimeout: idle, stallTimeout: stall,
        lineTimeout: line, hub: hub, post: { body in home.callFromThread { _ in body() } },
        counters: counters.stripe(home.index))
    }
  }
}
