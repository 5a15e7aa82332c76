/// The reactor's open connections, as an intrusive doubly linked list: insert and
/// remove are O(1) with no hashing and no allocation, per connection.
/// The list owns its connections (strong `next` links) until they are removed.
final class ConnectionList {
  private var head: TCPConnection?
  /// How many connections are open.
  private(set) var count = 0

  /// True when each connection's fd is claimed in ``DescriptorClaims`` while it is listed
  /// (a host's base, or once a socket was adopted). Never turned off; turned on, it claims
  /// the connections already listed, so every listed connection holds exactly one claim.
  var claimsDescriptors = false {
    didSet {
      guard claimsDescriptors, !oldValue else { return }
      var node = head
      while let current = node {
        DescriptorClaims.add(current.fd)
        node = current.listNext
      }
    }
  }

  /// True when no connection is open.
  var isEmpty: Bool { head == nil }

  func insert(_ connection: TCPConnection) {
    if claimsDescriptors { DescriptorClaims.add(connection.fd) }
    connection.listNext = head
    head?.listPrev = connection
    connection.listPrev = nil
    head = connection
    count += 1
  }

  func remove(_ connection: TCPConnection) {
    guard connection.listPrev != nil || head === connection else { return }
    if claimsDescriptors { DescriptorClaims.release(connection.fd) }
    let next = connection.listNext
    if let prev = connection.listPrev {
      prev.listNext = next
    } else {
      head = next
    }
    next?.listPrev = connection.listPrev
    connection.listNext = nil
    connection.listPrev = nil
    count -= 1
  }

  /// A snapshot, for closing them all while the list changes underneath.
  var all: [TCPConnection] {
    var result: [TCPConnection] = []
    result.reserveCapacity(count)
    var node = head
    while let current = node {
      result.append(current)
      node = current.listNext
    }
    return result
  }
}
