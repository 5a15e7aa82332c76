import CLibevent
import CTwineAPI
import Glibc
import LoopbackTestSupport
import Testing
import TwineBuiltins

@testable import Twine
@testable import TwineC

/// twine_listen_endpoint and twine_reactor_get_stats, called through the header as a C host calls them.
@Suite("C API endpoints and stats", .serialized)
struct CAPIEndpointTests {
  @Test("twine_listen_endpoint serves an endpoint string; a bad one is TWINE_EINVAL naming the part; stats add up")
  func endpointAndStats() throws {
    let host = HostLoop(tickEvery: 0.01)
    var reactor: OpaquePointer?
    var echo: OpaquePointer?
    try #require(twine_reactor_new(host.base, &reactor) == TWINE_OK)
    defer { _ = twine_reactor_destroy(reactor) }
    try #require(twine_factory_new("echo", nil, &echo) == TWINE_OK)
    defer { _ = twine_factory_free(echo) }
    var port: Int32 = 0
    #expect(twine_listen_endpoint(reactor, echo, "tcp:0:interface=127.0.0.1", &port) == TWINE_OK)
    #expect(port > 0)
    #expect(twine_listen_endpoint(reactor, echo, "tcp:80:colour=red", nil) == TWINE_EINVAL)
    #expect(CAPITests.lastError.contains("\"colour=red\": tcp has no parameter \"colour\""), "\(CAPITests.lastError)")
    #expect(twine_listen_endpoint(reactor, echo, nil, nil) == TWINE_EINVAL)
    #expect(twine_listen_endpoint(reactor, echo, "udp:0", nil) == TWINE_EINVAL)
    var stats = twine_reactor_stats()
    #expect(twine_reactor_get_stats(reactor, nil) == TWINE_EINVAL)
    let fd = try #require(RawSockets.connect(port: Int(port)))
    defer { close(fd) }
    #expect(RawSockets.sendAll(fd, Array("ping".utf8)))
    var counters = twine_counters()
    #expect(host.run { twine_factory_counters(echo, &counters) == TWINE_OK && counters.bytes_out == 4 })
    #expect(twine_reactor_get_stats(reactor, &stats) == TWINE_OK)
    #expect(stats.listeners == 1 && stats.connections == 1 && stats.accepted == 1)
    #expect(stats.refused == 0 && stats.accept_errors == 0 && stats.tls_handshake_failures == 0)
  }
}
