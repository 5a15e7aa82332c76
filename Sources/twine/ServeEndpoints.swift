import Twine

/// Serves `factory` on every `--listen` endpoint (one factory, one set of counters), and
/// UDP endpoints with a protocol from `datagram` (servers that speak only TCP pass nil).
/// Prints one `listening on` line per endpoint, in the order given. With `--takeover`, serves
/// the sockets the old server hands over instead.
func serveEndpoints(_ factory: Factory, _ options: ServerOptions, datagram: (() -> DatagramProtocol)? = nil) throws {
  try serve(options) { reactor in
    // A successor takes the old server's sockets instead (ServerOptions allows only plain endpoints then).
    if let taken = try options.lifecycle.takeOver(reactor, factory: factory, tls: nil) { return taken }
    var addresses: [String] = []
    for text in options.listen {
      let endpoint = try ServerEndpoint(text)
      if case .udp = endpoint {
        guard let datagram else { throw TwineError.badEndpoint("\(text): this server speaks TCP only") }
        addresses.append(try reactor.listen(endpoint, protocol: datagram()).host.description)
      } else {
        addresses.append(try reactor.listen(endpoint, factory: factory).address.description)
      }
    }
    return addresses.joined(separator: "\nlistening on ")
  } summary: {
    counts(factory)
  }
}
