import CTwineAPI
import Twine
import TwineProtocols

// The protocols of a C factory (`twine_factory_new_callbacks`), one per framing: each hands
// its events to its ``ConnectionHandle``, which calls the C callbacks. The framing classes
// are TwineProtocols' receivers, so a C protocol gets their parsing, limits and pausing.

/// Bytes as they arrive (`TWINE_FRAMING_RAW`).
final class CallbackRawProtocol: Protocol {
  var handle: ConnectionHandle!
  override func connectionMade() { handle.made() }
  override func dataReceived(_ data: RawSpan) { handle.deliver(data) }
  override func connectionLost(_ reason: CloseReason) { handle.lost(reason) }
}

/// Lines (`TWINE_FRAMING_LINES_CRLF`, `TWINE_FRAMING_LINES_LF`).
final class CallbackLineProtocol: LineReceiver {
  var handle: ConnectionHandle!
  override func connectionMade() { handle.made() }
  override func lineReceived(_ line: RawSpan) { handle.deliver(line) }
  override func connectionLost(_ reason: CloseReason) { handle.lost(reason) }
}

/// Netstrings (`TWINE_FRAMING_NETSTRINGS`).
final class CallbackNetstringProtocol: NetstringReceiver {
  var handle: ConnectionHandle!
  override func connectionMade() { handle.made() }
  override func stringReceived(_ string: RawSpan) { handle.deliver(string) }
  override func connectionLost(_ reason: CloseReason) { handle.lost(reason) }
}

/// Strings after a 4-byte length (`TWINE_FRAMING_INT32`).
final class CallbackInt32Protocol: Int32StringReceiver {
  var handle: ConnectionHandle!
  override func connectionMade() { handle.made() }
  override func stringReceived(_ string: RawSpan) { handle.deliver(string) }
  override func connectionLost(_ reason: CloseReason) { handle.lost(reason) }
}

/// The factory of `twine_factory_new_callbacks`: one protocol of `framing` per connection.
func callbackFactory(_ callbacks: CallbackSet, framing: Int32, maxFrameLength: Int) -> Factory? {
  func attach<P: Protocol>(_ proto: P, _ set: (P, ConnectionHandle) -> Void) -> P {
    set(proto, ConnectionHandle(callbacks: callbacks, proto: proto))
    return proto
  }
  switch framing {
  case Int32(TWINE_FRAMING_RAW.rawValue):
    return Factory { _ in attach(CallbackRawProtocol()) { $0.handle = $1 } }
  case Int32(TWINE_FRAMING_LINES_CRLF.rawValue), Int32(TWINE_FRAMING_LINES_LF.rawValue):
    let delimiter: [UInt8] = framing == Int32(TWINE_FRAMING_LINES_LF.rawValue) ? [10] : [13, 10]
    return Factory { _ in
      attach(CallbackLineProtocol()) {
        $0.handle = $1
        $0.delimiter = delimiter
        if maxFrameLength > 0 { $0.maxLength = maxFrameLength }
      }
    }
  case Int32(TWINE_FRAMING_NETSTRINGS.rawValue):
    return Factory { _ in
      attach(CallbackNetstringProtocol()) {
        $0.handle = $1
        if maxFrameLength > 0 { $0.maxLength = maxFrameLength }
      }
    }
  case Int32(TWINE_FRAMING_INT32.rawValue):
    return Factory { _ in
      attach(CallbackInt32Protocol()) {
        $0.handle = $1
        if maxFrameLength > 0 { $0.maxLength = maxFrameLength }
      }
    }
  default:
    return nil
  }
}
