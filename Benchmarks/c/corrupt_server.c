/*
 * corrupt_server.c -- epoll_server.c with "corrupt" as the default mode: an
 * echo server that flips one byte every N echoed bytes (--every N, default
 * 10000, counted over all connections).  Used by run.py --smoke to prove
 * that the load generator's byte verification catches a corrupting server.
 *
 *   corrupt_server [corrupt|echo|hello] --port P [--interface 127.0.0.1] [--every N]
 */
#define DEFAULT_MODE "corrupt"
#define PROG_NAME "corrupt_server"
#include "epoll_server.c"
