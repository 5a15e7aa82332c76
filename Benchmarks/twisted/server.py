"""Twisted comparison servers for the Twine benchmarks (see ../run.py).

    python twisted/server.py echo|hello --port P [--interface 127.0.0.1]

The tutorial's Echo and HelloHD protocols on real Twisted with the epoll
reactor.  Prints exactly one line ``listening on HOST:PORT`` once listening
(the real port with --port 0); exits 0 on SIGTERM/SIGINT (Twisted's own
signal handlers stop the reactor).

Deviations from the tutorial, shared by every server in the benchmark:
TCP_NODELAY on accepted connections and a listen backlog of 4096 (Twisted's
default of 50 would drop SYNs while 1,000 connections are being opened).
"""
import argparse
import resource
import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402  (after install())
from twisted.internet.protocol import Factory, Protocol  # noqa: E402

GREETING = b"Hello This is HD's Test protocol\r\n"


class Echo(Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


class HelloHD(Protocol):
    def connectionMade(self):
        self.transport.write(GREETING)
        self.transport.loseConnection()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["echo", "hello"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args()

    # many connections (idle test): raise the descriptor limit to the hard limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    factory = Factory.forProtocol(Echo if args.mode == "echo" else HelloHD)
    port = reactor.listenTCP(args.port, factory, backlog=4096, interface=args.interface)

    def announce():
        print(f"listening on {args.interface}:{port.getHost().port}", flush=True)

    reactor.callWhenRunning(announce)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
