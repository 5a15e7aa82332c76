import CLibevent
import CTwineAPI
import Glibc
import LoopbackTestSupport
import Synchronization
import Testing
import TwineBuiltins

@testable import Twine
@testable import TwineC

/// Twine's C API (twine.h), called through the header exactly as a C host calls it.
// Serialized: FactoryRegistry is process-wide; one test registers a factory, another lists the names.
@Suite("C API", .serialized)
struct CAPITests {
  /// The status code of `status` (twine.h's enum), for comparing with what the calls return.
  static func code(_ status: twine_status) -> twine_status { status }

  /// The message of the last failed call on this thread.
  static var lastError: String { String(cString: twine_last_error()) }

  @Test("a NULL base, a NULL out pointer and a stale handle are TWINE_EINVAL with a message, never a crash")
  func invalidArguments() throws {
    var reactor: OpaquePointer?
    #expect(twine_reactor_new(nil, &reactor) == Self.code(TWINE_EINVAL))
    #expect(reactor == nil)
    #expect(Self.lastError == "twine_reactor_new: base is NULL")
    let host = HostLoop(tickEvery: 1)
    #expect(twine_reactor_new(host.base, nil) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_reactor_new: out is NULL")
    #expect(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    #expect(twine_reactor_destroy(reactor) == Self.code(TWINE_OK))
    // Only the pointer's value is looked up (in the table of live handles), never what it points to.
    #expect(twine_listen(reactor, nil, nil, 0, nil) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_listen: not a live twine_reactor (destroyed, or never made)")
    #expect(twine_reactor_destroy(reactor) == Self.code(TWINE_EINVAL), "a second destroy is refused")
    #expect(twine_reactor_destroy(nil) == Self.code(TWINE_OK), "NULL is a no-op, as for free()")
    var counters = twine_counters()
    #expect(twine_factory_counters(nil, &counters) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_factory_counters: factory is NULL")
    #expect(host.eventCount == 1, "the host's timer is all that is left")
  }

  @Test("unknown factory names are TWINE_ENOTFOUND, bad parameters TWINE_EINVAL, each with a message")
  func factoryErrors() throws {
    var factory: OpaquePointer?
    #expect(twine_factory_new("nope", nil, &factory) == Self.code(TWINE_ENOTFOUND))
    #expect(factory == nil)
    #expect(Self.lastError.hasPrefix("twine_factory_new: no factory named \"nope\" (registered: "))
    #expect(Self.lastError.contains("\"echo\"") && Self.lastError.contains("\"hello\""))
    let bad: [(String, String)] = [
      ("max_connections=lots", "max_connections must be an integer in 0...2147483647, not \"lots\""),
      ("max_connections=-1", "max_connections must be an integer in 0...2147483647, not \"-1\""),
      ("max_connection=5", "factory \"echo\" has no parameter max_connection"),
      ("max_connections", "malformed parameter \"max_connections\" (expected key=value)"),
      ("max_connections=1,max_connections=2", "parameter max_connections given twice"),
    ]
    for (parameters, message) in bad {
      #expect(twine_factory_new("echo", parameters, &factory) == Self.code(TWINE_EINVAL), "\(parameters)")
      #expect(Self.lastError == "twine_factory_new(\"echo\"): \(message)")
    }
    #expect(twine_factory_new(nil, nil, &factory) == Self.code(TWINE_EINVAL))
    #expect(twine_factory_new("echo", " max_connections = 3 ", &factory) == Self.code(TWINE_OK))
    let made = try #require(FactoryHandle.table.get(factory)?.factory as? CountingFactory)
    #expect(made.maxConnections == 3)
    #expect(twine_factory_free(factory) == Self.code(TWINE_OK))
    #expect(twine_factory_free(factory) == Self.code(TWINE_EINVAL))
  }

  @Test("a bad port, a taken port and a bad interface are errors with messages; the reactor keeps working")
  func listenErrors() throws {
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    var echo: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    try #require(twine_factory_new("echo", nil, &echo) == Self.code(TWINE_OK))
    defer {
      _ = twine_reactor_destroy(reactor)
      _ = twine_factory_free(echo)
    }
    for port: Int32 in [-1, 65536] {
      #expect(twine_listen(reactor, echo, "127.0.0.1", port, nil) == Self.code(TWINE_EINVAL))
      #expect(Self.lastError == "twine_listen: port \(port) is not in 0...65535")
    }
    var port: Int32 = 0
    #expect(twine_listen(reactor, echo, "127.0.0.1", 0, &port) == Self.code(TWINE_OK))
    #expect(port > 0)
    #expect(twine_listen(reactor, echo, "127.0.0.1", port, nil) == Self.code(TWINE_EADDRINUSE))
    #expect(Self.lastError == "twine_listen: cannot listen on 127.0.0.1:\(port): Address already in use")
    #expect(twine_listen(reactor, echo, "example.com", 0, nil) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_listen: not a numeric IP address: example.com")
    #expect(twine_listen(reactor, nil, "127.0.0.1", 0, nil) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_listen: factory is NULL")
    #expect(String(cString: twine_status_name(Int32(TWINE_EADDRINUSE.rawValue))) == "TWINE_EADDRINUSE")
    #expect(String(cString: twine_status_name(99)) == "TWINE_UNKNOWN")
    // Still serving on the port that worked.
    let fd = try #require(RawSockets.connect(port: Int(port)))
    defer { close(fd) }
    #expect(RawSockets.sendAll(fd, Array("ping".utf8)))
    var counters = twine_counters()
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.bytes_out == 4 })
  }

  @Test("calls from another thread are TWINE_EWRONGTHREAD and do nothing; twine_last_error is per thread")
  func wrongThread() throws {
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    var echo: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    try #require(twine_factory_new("echo", nil, &echo) == Self.code(TWINE_OK))
    var unknown: OpaquePointer?
    _ = twine_factory_new("nope", nil, &unknown)  // this thread's last error
    let mine = Self.lastError
    let events = host.eventCount
    struct Handles: @unchecked Sendable { let reactor: OpaquePointer?, echo: OpaquePointer? }
    let handles = Handles(reactor: reactor, echo: echo)
    let results = Mutex<[(twine_status, String)]>([])
    let thread = startThread {
      var got: [(twine_status, String)] = []
      got.append((twine_listen(handles.reactor, handles.echo, "127.0.0.1", 0, nil), Self.lastError))
      got.append((twine_adopt_fd(handles.reactor, handles.echo, 0), Self.lastError))
      got.append((twine_set_log_callback(handles.reactor, nil, nil, 0), Self.lastError))
      got.append((twine_reactor_destroy(handles.reactor), Self.lastError))
      var counters = twine_counters()
      got.append((twine_factory_counters(handles.echo, &counters), ""))  // factories: any thread
      results.withLock { $0 = got }
    }
    pthread_join(thread, nil)
    let got = results.withLock { $0 }
    #expect(got.count == 5)
    for (status, message) in got.prefix(4) {
      #expect(status == Self.code(TWINE_EWRONGTHREAD))
      #expect(message.contains("called from another thread than the reactor's"))
    }
    #expect(got.last?.0 == Self.code(TWINE_OK))
    #expect(Self.lastError == mine, "another thread's failures leave this thread's message alone")
    #expect(host.eventCount == events, "nothing was added or removed")
    #expect(twine_reactor_destroy(reactor) == Self.code(TWINE_OK), "the owner thread still can")
    #expect(twine_factory_free(echo) == Self.code(TWINE_OK))
    #expect(host.eventCount == 1)
  }

  /// What the log callback below collects.
  final class LogLines: @unchecked Sendable {
    var lines: [(Int32, String)] = []
  }

  @Test("serves echo on a host base through the C API: counters, log callback, destroy leaves the host's events")
  func servesEcho() throws {
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    var echo: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    try #require(twine_factory_new("echo", "max_connections=1", &echo) == Self.code(TWINE_OK))
    let log = LogLines()
    let context = Unmanaged.passUnretained(log).toOpaque()
    #expect(
      twine_set_log_callback(
        reactor,
        { level, message, context in
          Unmanaged<LogLines>.fromOpaque(context!).takeUnretainedValue().lines.append(
            (level, String(cString: message!)))
        }, context, Int32(TWINE_LOG_DEBUG.rawValue)) == Self.code(TWINE_OK))
    var port: Int32 = 0
    try #require(twine_listen(reactor, echo, nil, 0, &port) == Self.code(TWINE_OK))
    let first = try #require(RawSockets.connect(port: Int(port)))
    let second = try #require(RawSockets.connect(port: Int(port)))
    defer { close(second) }
    let message = pattern(50_000, seed: 1)
    #expect(RawSockets.sendAll(first, message))
    var counters = twine_counters()
    let refusal = CountingEcho.refusal.utf8.count  // told to the refused second connection
    #expect(
      host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.bytes_out == message.count + refusal })
    #expect(RawSockets.receive(first, count: message.count) == message)
    #expect(counters.accepted == 2 && counters.refused == 1, "max_connections=1 refused the second")
    close(first)
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.live == 0 })
    #expect(
      log.lines.contains {
        $0.0 == Int32(TWINE_LOG_DEBUG.rawValue) && $0.1.hasPrefix("connection made peer=127.0.0.1:")
      })
    #expect(log.lines.contains { $0.1.hasPrefix("connection lost peer=127.0.0.1:") && $0.1.contains("reason=") })
    let logged = log.lines.count
    #expect(twine_set_log_callback(reactor, nil, nil, 0) == Self.code(TWINE_OK))
    #expect(twine_reactor_destroy(reactor) == Self.code(TWINE_OK))
    #expect(log.lines.count == logged, "a NULL callback discards")
    event_base_loop(host.base, EVLOOP_NONBLOCK)  // libevent's finalizers of freed bufferevents
    #expect(host.eventCount == 1)
    #expect(
      twine_factory_counters(echo, &counters) == TWINE_OK && counters.accepted == 2, "counters outlive the reactor")
    #expect(twine_factory_free(echo) == Self.code(TWINE_OK))
    let ticks = host.ticks.count
    #expect(host.run { host.ticks.count >= ticks + 3 })
  }

  @Test("twine_adopt_fd serves an accepted fd; a bad fd is TWINE_EINVAL, a UDP socket TWINE_ESOCKET, both left open")
  func adoptFD() throws {
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    var echo: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    try #require(twine_factory_new("echo", nil, &echo) == Self.code(TWINE_OK))
    defer {
      _ = twine_reactor_destroy(reactor)
      _ = twine_factory_free(echo)
    }
    #expect(twine_adopt_fd(reactor, echo, -1) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError.hasPrefix("twine_adopt_fd: cannot adopt fd -1: "))
    let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(udp) }
    let udpIdentity = RawSockets.identity(udp)
    #expect(twine_adopt_fd(reactor, echo, udp) == Self.code(TWINE_ESOCKET))
    #expect(RawSockets.identity(udp) == udpIdentity)
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let identity = RawSockets.identity(server)
    #expect(twine_adopt_fd(reactor, echo, server) == Self.code(TWINE_OK))
    #expect(RawSockets.sendAll(client, Array("adopted".utf8)))
    var counters = twine_counters()
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.bytes_out == 7 })
    #expect(RawSockets.receive(client, count: 7) == Array("adopted".utf8))
    shutdown(client, Int32(SHUT_WR))
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.live == 0 })
    #expect(RawSockets.identity(server) != identity, "Twine closed the adopted fd")
  }

  @Test(
    "twine_call_from_thread runs the function on the reactor's thread; after destroy the dead handle is TWINE_EINVAL")
  func callFromThread() throws {
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    final class Calls: @unchecked Sendable {
      let count = Atomic<Int>(0)
      let offThread = Atomic<Int>(0)
      let owner = pthread_self()
    }
    let calls = Calls()
    struct Shared: @unchecked Sendable { let reactor: OpaquePointer?, context: UnsafeMutableRawPointer }
    let shared = Shared(reactor: reactor, context: Unmanaged.passUnretained(calls).toOpaque())
    let statuses = Mutex<[twine_status]>([])
    let thread = startThread {
      var got: [twine_status] = []
      for _ in 0..<100 {
        got.append(
          twine_call_from_thread(
            shared.reactor,
            { context in
              let calls = Unmanaged<Calls>.fromOpaque(context!).takeUnretainedValue()
              if pthread_equal(pthread_self(), calls.owner) == 0 { calls.offThread.add(1, ordering: .relaxed) }
              calls.count.add(1, ordering: .relaxed)
            }, shared.context))
      }
      statuses.withLock { $0 = got }
    }
    #expect(host.run { calls.count.load(ordering: .relaxed) == 100 })
    pthread_join(thread, nil)
    #expect(statuses.withLock { $0 } == Array(repeating: Self.code(TWINE_OK), count: 100))
    #expect(calls.offThread.load(ordering: .relaxed) == 0)
    #expect(twine_call_from_thread(reactor, nil, nil) == Self.code(TWINE_EINVAL))
    #expect(twine_reactor_destroy(reactor) == Self.code(TWINE_OK))
    #expect(twine_call_from_thread(reactor, { _ in }, nil) == Self.code(TWINE_EINVAL))
  }

  @Test("a factory registered from Swift is made by name, with its parameters checked")
  func registeredFactory() throws {
    final class Shout: Protocol {
      var prefix = ""
      override func dataReceived(_ data: RawSpan) {
        transport.write(prefix + data.utf8String.uppercased())
      }
    }
    FactoryRegistry.register("shout") { parameters in
      let prefix = parameters.string("prefix", default: "")
      return Factory { _ in
        let shout = Shout()
        shout.prefix = prefix
        return shout
      }
    }
    #expect(FactoryRegistry.names.contains("shout"))
    var factory: OpaquePointer?
    #expect(twine_factory_new("shout", "volume=11", &factory) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_factory_new(\"shout\"): factory \"shout\" has no parameter volume")
    try #require(twine_factory_new("shout", "prefix=>", &factory) == Self.code(TWINE_OK))
    defer { _ = twine_factory_free(factory) }
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    defer { _ = twine_reactor_destroy(reactor) }
    var port: Int32 = 0
    try #require(twine_listen(reactor, factory, "127.0.0.1", 0, &port) == Self.code(TWINE_OK))
    let fd = try #require(RawSockets.connect(port: Int(port)))
    defer { close(fd) }
    #expect(RawSockets.sendAll(fd, Array("hi".utf8)))
    var counters = twine_counters()
    #expect(host.run { twine_factory_counters(factory, &counters) == TWINE_OK && counters.bytes_out == 3 })
    #expect(RawSockets.receive(fd, count: 3) == Array(">HI".utf8))

    // FactoryRegistry's doc comment example.
    FactoryRegistry.register("limited-echo") { parameters throws(FactoryParameters.Invalid) in
      let limit = try parameters.integer("limit", default: 10, in: 0...1000)
      return Factory { _ in CountingEcho(maxConnections: limit) }
    }
    var limited: OpaquePointer?
    try #require(twine_factory_new("limited-echo", "limit=3", &limited) == Self.code(TWINE_OK))
    defer { _ = twine_factory_free(limited) }
    let built = FactoryHandle.table.get(limited)?.factory.buildProtocol(SocketAddress(ipv4: (127, 0, 0, 1), port: 1))
    #expect((built as? CountingEcho)?.maxConnections == 3)
  }

  @Test("twine_adopt_bufferevent serves the host's bufferevent; NULL and another base's are TWINE_EINVAL")
  func adoptBufferevent() throws {
    let host = HostLoop(tickEvery: 0.01)
    let other = HostLoop(tickEvery: 1)
    var reactor: OpaquePointer?
    var echo: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == Self.code(TWINE_OK))
    try #require(twine_factory_new("echo", nil, &echo) == Self.code(TWINE_OK))
    defer {
      _ = twine_reactor_destroy(reactor)
      _ = twine_factory_free(echo)
    }
    #expect(twine_adopt_bufferevent(reactor, echo, nil) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_adopt_bufferevent: bufferevent is NULL")
    let (client, server) = try #require(RawSockets.connectedPair())
    defer { close(client) }
    let foreign = try #require(bufferevent_socket_new(other.base, server, 0))
    #expect(twine_adopt_bufferevent(reactor, echo, foreign) == Self.code(TWINE_EINVAL))
    #expect(Self.lastError == "twine_adopt_bufferevent: cannot adopt the bufferevent: it belongs to another event_base")
    bufferevent_free(foreign)  // without BEV_OPT_CLOSE_ON_FREE: the socket stays open
    let bev = try #require(bufferevent_socket_new(host.base, server, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)))
    #expect(twine_adopt_bufferevent(reactor, echo, bev) == Self.code(TWINE_OK))
    #expect(RawSockets.sendAll(client, Array("buffered".utf8)))
    var counters = twine_counters()
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.bytes_out == 8 })
    #expect(RawSockets.receive(client, count: 8) == Array("buffered".utf8))
  }

  /// What the callbacks of the two destroy tests below see.
  final class DestroyProbe: @unchecked Sendable {
    var reactor: OpaquePointer?
    var statuses: [twine_status] = []
    var messages: [String] = []
  }

  @Test("a twine_call_from_thread function may destroy the reactor; the host's loop goes on")
  func destroyFromThreadCall() throws {
    let host = HostLoop(tickEvery: 0.01)
    let probe = DestroyProbe()
    try #require(twine_reactor_new(host.base, &probe.reactor) == Self.code(TWINE_OK))
    var echo: OpaquePointer?
    try #require(twine_factory_new("echo", nil, &echo) == Self.code(TWINE_OK))
    defer { _ = twine_factory_free(echo) }
    try #require(twine_listen(probe.reactor, echo, "127.0.0.1", 0, nil) == Self.code(TWINE_OK))
    let context = Unmanaged.passUnretained(probe).toOpaque()
    #expect(
      twine_call_from_thread(
        probe.reactor,
        { context in
          let probe = Unmanaged<DestroyProbe>.fromOpaque(context!).takeUnretainedValue()
          probe.statuses.append(twine_reactor_destroy(probe.reactor))
        }, context) == Self.code(TWINE_OK))
    #expect(host.run { probe.statuses == [Self.code(TWINE_OK)] })
    #expect(host.eventCount == 1)
    #expect(twine_call_from_thread(probe.reactor, { _ in }, nil) == Self.code(TWINE_EINVAL))
    let ticks = host.ticks.count
    #expect(host.run { host.ticks.count >= ticks + 3 })
  }

  @Test("destroying the reactor from inside its log callback is refused with TWINE_EINVAL")
  func destroyFromLogCallback() throws {
    let host = HostLoop(tickEvery: 0.01)
    let probe = DestroyProbe()
    try #require(twine_reactor_new(host.base, &probe.reactor) == Self.code(TWINE_OK))
    var echo: OpaquePointer?
    try #require(twine_factory_new("echo", nil, &echo) == Self.code(TWINE_OK))
    defer {
      _ = twine_reactor_destroy(probe.reactor)
      _ = twine_factory_free(echo)
    }
    let context = Unmanaged.passUnretained(probe).toOpaque()
    #expect(
      twine_set_log_callback(
        probe.reactor,
        { _, _, context in
          let probe = Unmanaged<DestroyProbe>.fromOpaque(context!).takeUnretainedValue()
          probe.statuses.append(twine_reactor_destroy(probe.reactor))
          probe.messages.append(String(cString: twine_last_error()))
        }, context, Int32(TWINE_LOG_DEBUG.rawValue)) == Self.code(TWINE_OK))
    var port: Int32 = 0
    try #require(twine_listen(probe.reactor, echo, "127.0.0.1", 0, &port) == Self.code(TWINE_OK))
    let fd = try #require(RawSockets.connect(port: Int(port)))
    defer { close(fd) }
    #expect(host.run { !probe.statuses.isEmpty })
    #expect(probe.statuses.allSatisfy { $0 == Self.code(TWINE_EINVAL) })
    #expect(probe.messages.first == "twine_reactor_destroy: called from inside the reactor's log callback")
    #expect(RawSockets.sendAll(fd, Array("still here".utf8)))
    var counters = twine_counters()
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.bytes_out == 10 })
    #expect(RawSockets.receive(fd, count: 10) == Array("still here".utf8), "the reactor still serves")
  }
}
