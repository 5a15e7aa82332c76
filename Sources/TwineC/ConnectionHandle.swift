import CTwineAPI
import Glibc
import Twine
import TwineProtocols

/// What a `twine_connection *` handle stands for: one connection served by a protocol
/// written in C, from `connection_made` until `connection_lost` returns.
///
/// It forwards the protocol's three events to the C callbacks and the host's calls to
/// the transport. Unchecked Sendable: used only on the connection's thread (every C call
/// checks ``thread`` first); the handle itself only moves between tables.
final class ConnectionHandle: @unchecked Sendable {
  let callbacks: CallbackSet
  /// The protocol; weak: the protocol holds this handle, the transport holds the protocol.
  private(set) weak var proto: Protocol?
  /// The reactor thread the connection's events arrive on.
  let thread = pthread_self()
  /// The host's pointer (`twine_connection_set_data`).
  var data: UnsafeMutableRawPointer?
  /// This handle's value, from `connection_made` until `connection_lost` returns.
  private(set) var pointer: OpaquePointer?

  init(callbacks: CallbackSet, proto: Protocol) {
    self.callbacks = callbacks
    self.proto = proto
  }

  /// The connection is up: a handle for C, then `connection_made`.
  func made() {
    pointer = Self.table.add(self)
    guard let pointer else {
      proto?.transport.abortConnection()
      return
    }
    callbacks.raw.connection_made?(pointer, callbacks.context)
  }

  /// Bytes or one frame for `data_received`.
  func deliver(_ data: RawSpan) {
    guard let pointer, let received = callbacks.raw.data_received else { return }
    data.withUnsafeBytes { received(pointer, $0.baseAddress, $0.count, callbacks.context) }
  }

  /// The connection closed: `connection_lost`, then the handle is dead.
  func lost(_ reason: CloseReason) {
    guard let pointer else { return }
    callbacks.raw.connection_lost?(pointer, Int32(Self.code(reason).rawValue), callbacks.context)
    _ = Self.table.remove(pointer)
    self.pointer = nil
  }

  /// Sends one frame in the factory's framing; false when it cannot be framed (too long).
  func sendFrame(_ bytes: RawSpan) -> Bool {
    switch proto {
    case let lines as LineReceiver: lines.sendLine(bytes)
    case let netstrings as NetstringReceiver: netstrings.sendString(bytes)
    case let prefixed as IntNStringReceiver:
      do throws(StringTooLongError) { try prefixed.sendString(bytes) } catch { return false }
    case let raw?: raw.transport.write(bytes)
    case nil: break
    }
    return true
  }

  /// Stops (`true`) or restarts delivery: between frames for a framing receiver, else by pausing the transport.
  func setPaused(_ paused: Bool) {
    if let producer = proto as? any PushProducer {
      if paused { producer.pauseProducing() } else { producer.resumeProducing() }
    } else if let transport = proto?.transport {
      if paused { transport.pauseProducing() } else { transport.resumeProducing() }
    }
  }

  /// The `twine_close_reason` of `reason`.
  static func code(_ reason: CloseReason) -> twine_close_reason {
    switch reason {
    case .closedByUs: TWINE_CLOSED_BY_US
    case .closedByPeer: TWINE_CLOSED_BY_PEER
    case .aborted: TWINE_CLOSED_ABORTED
    case .reset: TWINE_CLOSED_RESET
    case .timedOut: TWINE_CLOSED_TIMED_OUT
    case .reactorShutdown: TWINE_CLOSED_SHUTDOWN
    case .protocolError: TWINE_CLOSED_PROTOCOL_ERROR
    case .bufferOverflow: TWINE_CLOSED_BUFFER_OVERFLOW
    default: TWINE_CLOSED_ERROR
    }
  }

  /// Every live `twine_connection *`.
  static let table = HandleTable<ConnectionHandle>(.connection)
}

/// A C protocol's callbacks and context, copied from the host's `twine_protocol_callbacks`
/// (the host vouches that they may be called on every thread the factory serves).
struct CallbackSet: @unchecked Sendable {
  let raw: twine_protocol_callbacks
  let context: UnsafeMutableRawPointer?
}
