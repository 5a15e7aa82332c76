import CLibevent

/// Non-blocking host name lookups on the reactor's loop. Owns one `evdns_base`.
final class Resolver {
  private let dns: OpaquePointer
  /// Lookups whose libevent callback has not run yet (it always runs, even after a cancel).
  fileprivate var inFlight: [ObjectIdentifier: Lookup] = [:]

  /// A resolver that asks `nameserver` ("IP" or "IP:port"), or the ones in
  /// /etc/resolv.conf when nil. /etc/hosts is read either way.
  init(base: OpaquePointer, nameserver: String? = nil) throws(TwineError) {
    let made: OpaquePointer?
    if let nameserver {
      made = evdns_base_new(base, 0)
      if let made {
        evdns_base_load_hosts(made, nil)
        guard evdns_base_nameserver_ip_add(made, nameserver) == 0 else {
          evdns_base_free(made, 0)
          throw .badAddress(nameserver)
        }
      }
    } else {
      made =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_NAMESERVERS_NO_DEFAULT)
        ?? evdns_base_new(base, 0)
    }
    guard let made else { throw .libevent("evdns_base_new") }
    self.dns = made
  }

  deinit { evdns_base_free(dns, 1) }

  /// Looks `host` up (TCP, any family); `completion` runs on the loop with the first
  /// address or the failure. The returned lookup can be cancelled.
  func resolve(
    _ host: String, port: Int, completion: @escaping (Result<NumericAddress, CloseReason>) -> Void
  ) -> Lookup {
    let lookup = Lookup(completion, resolver: self)
    inFlight[ObjectIdentifier(lookup)] = lookup
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_protocol = Int32(IPPROTO_TCP)
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG
    let context = Unmanaged.passRetained(lookup).toOpaque()  // released by the callback, which always runs
    let request = evdns_getaddrinfo(
      dns, host, String(port), &hints,
      { result, info, context in
        Unmanaged<Lookup>.fromOpaque(context!).takeRetainedValue().finish(result, info)
      }, context)
    if !lookup.isDone { lookup.request = request }
    return lookup
  }

  /// Cancels every lookup in flight; each completes with `reason`. Their
  /// libevent callbacks come later, through the loop (see ``awaitingCancelledCallbacks``).
  func cancelAll(_ reason: CloseReason = .reactorShutdown) {
    for lookup in Array(inFlight.values) {
      let completion = lookup.takeCompletion()
      lookup.cancel()
      completion?(.failure(reason))
    }
  }

  /// True while a cancelled lookup's libevent callback has still to run (a loop pass runs it).
  var awaitingCancelledCallbacks: Bool { !inFlight.isEmpty }

  /// One lookup in flight.
  final class Lookup {
    fileprivate var request: OpaquePointer?
    private var completion: ((Result<NumericAddress, CloseReason>) -> Void)?
    fileprivate var isDone: Bool { completion == nil }
    /// The resolver outlives every callback of its lookups (its deinit frees the DNS base after they ran).
    private unowned(unsafe) let resolver: Resolver

    fileprivate init(_ completion: @escaping (Result<NumericAddress, CloseReason>) -> Void, resolver: Resolver) {
      self.completion = completion
      self.resolver = resolver
    }

    fileprivate func takeCompletion() -> ((Result<NumericAddress, CloseReason>) -> Void)? {
      defer { completion = nil }
      return completion
    }

    /// Cancels it; the completion does not run.
    func cancel() {
      completion = nil
      if let request {
        self.request = nil
        evdns_getaddrinfo_cancel(request)
      }
    }

    fileprivate func finish(_ result: Int32, _ info: UnsafeMutablePointer<addrinfo>?) {
      request = nil
      resolver.inFlight[ObjectIdentifier(self)] = nil
      defer { if let info { evutil_freeaddrinfo(info) } }
      guard let completion else { return }
      self.completion = nil
      if result == 0, let first = info, let sa = first.pointee.ai_addr {
        var address = NumericAddress()
        withUnsafeMutableBytes(of: &address.storage) {
          $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(first.pointee.ai_addrlen)))
        }
        address.length = socklen_t(first.pointee.ai_addrlen)
        completion(.success(address))
      } else {
        completion(.failure(.lookupFailed(String(cString: evutil_gai_strerror(result)))))
      }
    }
  }
}
