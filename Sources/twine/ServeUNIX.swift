import Twine

/// Serves `factory` on the UNIX-domain socket `path` (removed again on exit).
func serveUNIX(_ factory: Factory, path: String, _ options: ServerOptions) throws {
  try serve(options) { reactor in
    try options.lifecycle.takeOver(reactor, factory: factory, tls: nil)
      ?? reactor.listenUNIX(path, factory: factory).address.description
  } summary: {
    counts(factory)
  }
}
