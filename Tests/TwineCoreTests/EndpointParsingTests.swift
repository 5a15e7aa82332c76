import Testing
import TwineCore

/// Endpoint strings in Twisted's syntax: every form, escapes, and each malformed form with its error.
@Suite("Endpoint strings")
struct EndpointParsingTests {
  @Test(
    "every server form parses to what it says",
    arguments: [
      ("tcp:8025", ServerEndpoint.tcp(port: 8025, interface: "", backlog: 511)),
      ("tcp:8025:interface=127.0.0.1", .tcp(port: 8025, interface: "127.0.0.1", backlog: 511)),
      ("tcp:port=0:backlog=7", .tcp(port: 0, interface: "", backlog: 7)),
      ("tcp:80:127.0.0.1:50", .tcp(port: 80, interface: "127.0.0.1", backlog: 50)),
      ("tcp6:8025", .tcp6(port: 8025, interface: "::", backlog: 511)),
      ("tcp6:8025:interface=\\:\\:1", .tcp6(port: 8025, interface: "::1", backlog: 511)),
      ("unix:/tmp/echo.sock", .unix(path: "/tmp/echo.sock", mode: 0o666, backlog: 511)),
      ("unix:address=/tmp/e.sock:mode=660:backlog=5", .unix(path: "/tmp/e.sock", mode: 0o660, backlog: 5)),
      ("unix:/tmp/a\\:b\\=c\\\\d", .unix(path: "/tmp/a:b=c\\d", mode: 0o666, backlog: 511)),
      (
        "ssl:443:privateKey=k.pem:certKey=c.pem",
        .ssl(port: 443, interface: "", backlog: 511, privateKey: "k.pem", certKey: "c.pem", extraCertChain: nil)
      ),
      (
        "ssl:443:privateKey=both.pem:extraCertChain=chain.pem:interface=\\:\\:1",
        .ssl(
          port: 443, interface: "::1", backlog: 511, privateKey: "both.pem", certKey: "both.pem",
          extraCertChain: "chain.pem")
      ),
      ("udp:5353", .udp(port: 5353, interface: "")),
      ("udp:5353:interface=127.0.0.1", .udp(port: 5353, interface: "127.0.0.1")),
      ("systemd:domain=INET:index=0", .systemd(domain: .inet, socket: .index(0))),
      ("systemd:domain=UNIX:name=control", .systemd(domain: .unix, socket: .name("control"))),
      ("systemd:INET6:2", .systemd(domain: .inet6, socket: .index(2))),
      ("haproxy:tcp:8025", .haproxy(.tcp(port: 8025, interface: "", backlog: 511))),
      (
        "haproxy:unix:/run/a\\:b.sock:mode=600",
        .haproxy(.unix(path: "/run/a:b.sock", mode: 0o600, backlog: 511))
      ),
      (
        "haproxy:systemd:domain=INET:index=1", .haproxy(.systemd(domain: .inet, socket: .index(1)))
      ),
      ("tcp:1:interface=a=b", .tcp(port: 1, interface: "a=b", backlog: 511)),
    ])
  func serverForms(_ text: String, _ expected: ServerEndpoint) throws {
    #expect(try ServerEndpoint(text) == expected)
    #expect(try serverFromString(text) == expected)
    // The string form parses back to the same endpoint.
    #expect(try ServerEndpoint(expected.description) == expected, "\(expected.description)")
  }

  @Test(
    "each malformed server string is refused, naming the bad part",
    arguments: [
      ("", "", "no endpoint type"),
      (":80", "", "no endpoint type"),
      ("tcp", "tcp", "tcp needs port"),
      ("tcp:", "port=", "port must be a whole number"),
      ("tcp:http", "port=http", "port must be a whole number from 0 to 65535"),
      ("tcp:65536", "port=65536", "from 0 to 65535"),
      ("tcp:-1", "port=-1", "from 0 to 65535"),
      ("tcp:80:backlog=0", "backlog=0", "backlog must be a whole number from 1"),
      ("tcp:80:interface=x:interface=y", "interface=y", "interface given twice"),
      ("tcp:80:colour=red", "colour=red", "tcp has no parameter \"colour\""),
      ("tcp:80:a:5:extra", "extra", "too many parts for tcp"),
      ("tcp:80\\", "\\", "a backslash at the end escapes nothing"),
      ("sctp:80", "sctp", "unknown endpoint type"),
      ("unix", "unix", "unix needs address"),
      ("unix:", "unix", "unix needs a socket path"),
      ("unix:/tmp/s:mode=888", "mode=888", "mode must be octal"),
      ("ssl:443:privatekey=k.pem", "privatekey=k.pem", "ssl has no parameter \"privatekey\""),
      ("udp", "udp", "udp needs port"),
      ("systemd:index=0", "systemd", "systemd needs domain"),
      ("systemd:domain=IPX:index=0", "domain=IPX", "domain must be INET, INET6 or UNIX"),
      ("systemd:domain=INET", "systemd", "needs index=N or name=NAME"),
      ("systemd:domain=INET:index=0:name=a", "systemd", "needs index=N or name=NAME"),
      ("systemd:domain=INET:index=x", "index=x", "index must be a whole number"),
      ("haproxy", "haproxy", "haproxy needs an endpoint to wrap"),
      ("haproxy:", "haproxy", "haproxy needs an endpoint to wrap"),
      ("haproxy:udp:53", "udp", "haproxy wraps stream endpoints only"),
      ("haproxy:haproxy:tcp:80", "haproxy", "haproxy cannot wrap haproxy"),
      ("haproxy:tcp:99999", "port=99999", "from 0 to 65535"),
    ])
  func malformedServer(_ text: String, _ part: String, _ problem: String) {
    #expect {
      _ = try ServerEndpoint(text)
    } throws: { error in
      guard let error = error as? EndpointError else { return false }
      #expect(error.part == part, "\(error)")
      #expect(error.problem.contains(problem), "\(error)")
      #expect(error.description.hasPrefix("bad endpoint \"\(text)\""), "\(error)")
      return true
    }
  }

  @Test("client forms: tcp, unix and ssl, positional or by keyword")
  func clientForms() throws {
    #expect(try ClientEndpoint("tcp:example.com:80") == .tcp(host: "example.com", port: 80, timeout: 30))
    #expect(
      try clientFromString("tcp:host=\\:\\:1:port=8025:timeout=2.5") == .tcp(host: "::1", port: 8025, timeout: 2.5))
    #expect(try ClientEndpoint("unix:/tmp/a\\:b") == .unix(path: "/tmp/a:b", timeout: 30))
    #expect(try ClientEndpoint("unix:path=/tmp/s:timeout=9") == .unix(path: "/tmp/s", timeout: 9))
    let ssl = try ClientEndpoint("ssl:localhost:443:caCertsFile=ca.pem:certKey=c.pem")
    guard case .ssl(let host, let port, let timeout, let tls) = ssl else {
      Issue.record("not ssl: \(ssl)")
      return
    }
    #expect(host == "localhost" && port == 443 && timeout == 30)
    #expect(tls.trustedCAFile == "ca.pem" && tls.certificateFile == "c.pem" && tls.privateKeyFile == "c.pem")
    #expect(tls.verifyPeer)
  }

  @Test(
    "each malformed client string is refused, naming the bad part",
    arguments: [
      ("tcp:example.com", "tcp", "tcp needs port"),
      ("tcp:example.com:0", "port=0", "from 1 to 65535"),
      ("tcp:h:80:timeout=0", "timeout=0", "seconds above 0"),
      ("tcp:h:80:timeout=nan", "timeout=nan", "seconds above 0"),
      ("unix:timeout=3", "unix", "unix needs path"),
      ("udp:h:53", "udp", "unknown client endpoint type"),
      ("ssl:h:443:bindAddress=1.2.3.4", "bindAddress=1.2.3.4", "ssl has no parameter"),
    ])
  func malformedClient(_ text: String, _ part: String, _ problem: String) {
    #expect {
      _ = try ClientEndpoint(text)
    } throws: { error in
      guard let error = error as? EndpointError else { return false }
      #expect(error.part == part, "\(error)")
      #expect(error.problem.contains(problem), "\(error)")
      return true
    }
  }
}
