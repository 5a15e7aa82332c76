import CLibevent
import CLibeventOpenSSL
import Glibc

/// A TLS client written straight on OpenSSL, for what Twine's own client cannot show:
/// the records as they arrive on the wire, several records sent in one segment, garbage
/// after the handshake. Non-blocking, pumped from the test's loop (``pump()``), never
/// from a thread. Verifies nothing (a test peer).
final class RawTLSPeer {
  private let fd: Int32
  private let context: OpaquePointer
  private let ssl: OpaquePointer
  /// The handshake completed.
  private(set) var handshakeDone = false
  /// Ciphertext read raw from the socket after the handshake (``readRaw()``).
  private(set) var raw: [UInt8] = []
  /// The server ended the stream (EOF or an error) while reading raw.
  private(set) var ended = false

  /// Connects to 127.0.0.1:`port` and starts the handshake.
  init(port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    precondition(fd >= 0)
    self.fd = fd
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    precondition(result == 0 || errno == EINPROGRESS)
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    context = SSL_CTX_new(TLS_client_method())!
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
    ssl = SSL_new(context)!
    SSL_set_fd(ssl, fd)
    SSL_set_connect_state(ssl)
  }

  deinit {
    SSL_free(ssl)
    SSL_CTX_free(context)
    close(fd)
  }

  /// Drives the handshake; true once it is done.
  @discardableResult
  func pump() -> Bool {
    if !handshakeDone {
      ERR_clear_error()
      handshakeDone = SSL_do_handshake(ssl) == 1
    }
    return handshakeDone
  }

  /// Reads whatever ciphertext has arrived, raw (no decryption), into ``raw``.
  func readRaw() {
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      if got > 0 {
        raw += chunk[..<got]
        continue
      }
      if got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { ended = true }
      return
    }
  }

  /// The TLS records in ``raw`` as (content type, length), whole ones only.
  var records: [(type: UInt8, length: Int)] {
    var found: [(UInt8, Int)] = []
    var offset = 0
    while offset + 5 <= raw.count {
      let length = Int(raw[offset + 3]) << 8 | Int(raw[offset + 4])
      guard offset + 5 + length <= raw.count else { break }
      found.append((raw[offset], length))
      offset += 5 + length
    }
    return found
  }

  /// Encrypts each of `pieces` as its own record and sends them all in one `send`.
  func sendRecordsInOneSegment(_ pieces: [[UInt8]]) {
    let memory = BIO_new(BIO_s_mem())!
    // Reads from the socket still, writes into memory (the read BIO unchanged keeps its reference).
    SSL_set_bio(ssl, SSL_get_rbio(ssl), memory)
    for piece in pieces {
      let wrote = piece.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
      precondition(wrote == Int32(piece.count))
    }
    var segment = [UInt8](repeating: 0, count: Int(BIO_ctrl_pending(memory)))
    let taken = segment.withUnsafeMutableBytes { BIO_read(memory, $0.baseAddress, Int32($0.count)) }
    precondition(taken == Int32(segment.count))
    sendRaw(segment)
  }

  /// Sends `bytes` as they are (garbage, a truncated record, ...).
  func sendRaw(_ bytes: [UInt8]) {
    let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    precondition(sent == bytes.count, "send took \(sent) of \(bytes.count)")
  }

  /// Shuts the write side: the server reads end of stream (no close_notify).
  func shutWrite() { shutdown(fd, Int32(SHUT_WR)) }
}
