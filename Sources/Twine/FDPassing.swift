import CLibevent
import Glibc

/// File descriptors sent over a UNIX-domain stream socket (`SCM_RIGHTS`), with a few bytes
/// of text in the same message. `CMSG_*` are C macros Swift cannot see: the control
/// buffer is laid out here by hand (a `cmsghdr`, then the descriptors, padded to a word).
enum FDPassing {
  /// The most descriptors one message carries (the kernel's `SCM_MAX_FD` is 253).
  static let maxFDs = 250

  private static let headerSize = align(MemoryLayout<cmsghdr>.size)

  private static func align(_ size: Int) -> Int {
    let word = MemoryLayout<Int>.size
    return (size + word - 1) & ~(word - 1)
  }

  /// Sends `bytes` (at least one) with `fds` attached, in one `sendmsg`. The receiver gets
  /// its own descriptors of the same open sockets; ours stay open.
  static func send(_ socket: Int32, _ bytes: [UInt8], fds: [Int32]) throws(SocketError) {
    precondition(!bytes.isEmpty && fds.count <= maxFDs)
    var bytes = bytes
    let dataSize = fds.count * MemoryLayout<Int32>.size
    var control = [UInt8](repeating: 0, count: fds.isEmpty ? 0 : headerSize + align(dataSize))
    let sent = bytes.withUnsafeMutableBytes { data in
      control.withUnsafeMutableBytes { controlBytes in
        if !fds.isEmpty {
          let header = controlBytes.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
          header.pointee.cmsg_len = headerSize + dataSize
          header.pointee.cmsg_level = SOL_SOCKET
          header.pointee.cmsg_type = Int32(SCM_RIGHTS)
          fds.withUnsafeBytes {
            (controlBytes.baseAddress! + headerSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
          }
        }
        var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
        return withUnsafeMutablePointer(to: &vector) { vector in
          var message = msghdr()
          message.msg_iov = vector
          message.msg_iovlen = 1
          message.msg_control = fds.isEmpty ? nil : controlBytes.baseAddress
          message.msg_controllen = controlBytes.count
          while true {
            let sent = sendmsg(socket, &message, Int32(MSG_NOSIGNAL))
            if sent >= 0 || errno != EINTR { return sent >= 0 ? sent : -Int(errno) }
          }
        }
      }
    }
    guard sent >= 0 else { throw .from(code: Int32(-sent)) }
    guard sent == bytes.count else { throw SocketError(code: EMSGSIZE, message: "the message was cut short") }
  }

  /// Receives one message of at most `maxBytes` and the descriptors attached to it (made
  /// close-on-exec); nil at the end of the stream. Descriptors of a message whose control
  /// part was cut short are closed and the call throws `EMSGSIZE`.
  static func receive(_ socket: Int32, maxBytes: Int = 4096) throws(SocketError) -> (bytes: [UInt8], fds: [Int32])? {
    var bytes = [UInt8](repeating: 0, count: maxBytes)
    var control = [UInt8](repeating: 0, count: headerSize + align(maxFDs * MemoryLayout<Int32>.size))
    var flags: Int32 = 0
    var fds: [Int32] = []
    let got = bytes.withUnsafeMutableBytes { data in
      control.withUnsafeMutableBytes { controlBytes in
        var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
        return withUnsafeMutablePointer(to: &vector) { vector in
          var message = msghdr()
          message.msg_iov = vector
          message.msg_iovlen = 1
          message.msg_control = controlBytes.baseAddress
          message.msg_controllen = controlBytes.count
          var got = -1
          while true {
            got = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
            if got >= 0 || errno != EINTR { break }
          }
          guard got >= 0 else { return -Int(errno) }
          flags = message.msg_flags
          // Walk the control messages: header, data, padding, as CMSG_NXTHDR does.
          var offset = 0
          while offset + headerSize <= message.msg_controllen {
            let header = (controlBytes.baseAddress! + offset).assumingMemoryBound(to: cmsghdr.self).pointee
            guard header.cmsg_len >= headerSize, offset + header.cmsg_len <= message.msg_controllen else { break }
            if header.cmsg_level == SOL_SOCKET && header.cmsg_type == Int32(SCM_RIGHTS) {
              let count = (header.cmsg_len - headerSize) / MemoryLayout<Int32>.size
              let start = controlBytes.baseAddress! + offset + headerSize
              for index in 0..<count {
                fds.append(start.loadUnaligned(fromByteOffset: index * MemoryLayout<Int32>.size, as: Int32.self))
              }
            }
            offset += align(header.cmsg_len)
          }
          return got
        }
      }
    }
    guard got >= 0 else { throw .from(code: Int32(-got)) }
    if flags & Int32(MSG_CTRUNC) != 0 {
      for fd in fds { Glibc.close(fd) }
      throw SocketError(code: EMSGSIZE, message: "more descriptors were sent than fit (MSG_CTRUNC)")
    }
    if got == 0 && fds.isEmpty { return nil }
    return (Array(bytes[..<got]), fds)
  }
}
