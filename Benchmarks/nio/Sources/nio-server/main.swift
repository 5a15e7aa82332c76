// nio-server: the benchmark's echo and greeting servers on SwiftNIO, on ONE
// event-loop thread.  CLI mirrors ../c/epoll_server.c:
//   nio-server echo|hello --port P [--interface 127.0.0.1]
// Prints exactly one line `listening on HOST:PORT` once bound; exits 0 on
// SIGTERM/SIGINT.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

let greeting = "Hello This is HD's Test protocol\r\n"

/// Idiomatic NIO echo: write every read straight back, flush once per read burst.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Greeting: write the line, close once it is written.
final class HelloHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(string: greeting)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Write to standard error (naming C's `stderr` is not concurrency-safe in Swift 6).
func warn(_ message: String) {
    var message = message + "\n"
    message.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

func usage() -> Never {
    warn("usage: nio-server echo|hello --port P [--interface 127.0.0.1]")
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
guard let mode = args.first, mode == "echo" || mode == "hello" else { usage() }
args.removeFirst()
var port = 0
var interface = "127.0.0.1"
while !args.isEmpty {
    let flag = args.removeFirst()
    guard !args.isEmpty else { usage() }
    let value = args.removeFirst()
    switch flag {
    case "--port": guard let p = Int(value) else { usage() }; port = p
    case "--interface": interface = value
    default: usage()
    }
}

// Many connections (idle test): raise the descriptor limit to the hard limit.
var limit = rlimit()
#if os(Linux)
let nofile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#else
let nofile = RLIMIT_NOFILE
#endif
if getrlimit(nofile, &limit) == 0 && limit.rlim_cur < limit.rlim_max {
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(nofile, &limit)
}

signal(SIGTERM) { _ in _exit(0) }
signal(SIGINT) { _ in _exit(0) }

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let isEcho = mode == "echo"
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            if isEcho {
                try channel.pipeline.syncOperations.addHandler(EchoHandler())
            } else {
                try channel.pipeline.syncOperations.addHandler(HelloHandler())
            }
        }
    }

do {
    let channel = try bootstrap.bind(host: interface, port: port).wait()
    let bound = channel.localAddress?.port ?? port
    print("listening on \(interface):\(bound)")
    fflush(nil)  // all streams (stdout is not concurrency-safe to name in Swift 6)
    try channel.closeFuture.wait()
} catch {
    warn("nio-server: \(error)")
    exit(1)
}
