import CLibevent

/// Non-blocking host name lookups on the reactor's loop. Owns one `evdns_base`.
final class Resolver {
  private let dns: OpaquePointer

  init(base: OpaquePointer) throws(TwineError) {
    guard
      let dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_NAMESERVERS_NO_DEFAULT)
        ?? evdns_base_new(base, 0)
    else { throw .libevent("evdns_base_new") }
    self.dns = dns
  }

  deinit { evdns_base_free(dns, 1) }

  /// Looks `host` up (TCP, any family); `completion` runs on the loop with the first
  /// address or the failure. The returned lookup can be cancelled.
  func resolve(
    _ host: String, port: Int, completion: @escaping (Result<NumericAddress, CloseReason>) -> Void
  ) -> Lookup {
    let lookup = Lookup(completion)
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

  /// One lookup in flight.
  final class Lookup {
    fileprivate var request: OpaquePointer?
    private var completion: ((Result<NumericAddress, CloseReason>) -> Void)?
    fileprivate var isDone: Bool { completion == nil }

    fileprivate init(_ completion: @escaping (Result<NumericAddress, CloseReason>) -> Void) {
      self.completion = completion
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
