/*
 * libevent_server.c -- the same two servers the way a C deployment on
 * libevent writes them today: evconnlistener + bufferevent, straightforward
 * idiomatic code, no tuning.
 *
 *   libevent_server echo|hello --port P [--interface 127.0.0.1]
 *
 * echo:  read callback moves the whole input buffer to the output buffer
 *        (evbuffer_add_buffer(output, input)); bufferevent writes it.
 * hello: write the greeting on accept, free (close) the bufferevent from
 *        the write callback once the output buffer is empty.
 *
 * Prints exactly one line "listening on HOST:PORT" once listening.
 * Exits 0 on SIGTERM/SIGINT.  Link: pkg-config --libs libevent_core.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static const char GREETING[] = "Hello This is HD's Test protocol\r\n";

static void echo_read_cb(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void hello_write_cb(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) bufferevent_free(bev);
}

static void event_cb(struct bufferevent *bev, short events, void *ctx) {
    (void)ctx;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void echo_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                           void *ctx) {
    (void)sa, (void)socklen, (void)ctx;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev =
        bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, echo_read_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void hello_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                            void *ctx) {
    (void)sa, (void)socklen, (void)ctx;
    struct bufferevent *bev =
        bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, NULL, hello_write_cb, event_cb, NULL);
    bufferevent_enable(bev, EV_WRITE);
    bufferevent_write(bev, GREETING, sizeof GREETING - 1);
}

static void accept_error_cb(struct evconnlistener *l, void *ctx) {
    (void)l, (void)ctx;
    int err = EVUTIL_SOCKET_ERROR();
    fprintf(stderr, "libevent_server: accept: %s\n", evutil_socket_error_to_string(err));
}

static void signal_cb(evutil_socket_t sig, short events, void *base) {
    (void)sig, (void)events;
    event_base_loopbreak(base);
}

static void usage(void) {
    fprintf(stderr, "usage: libevent_server echo|hello --port P [--interface 127.0.0.1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    int echo;
    if (!strcmp(argv[1], "echo"))
        echo = 1;
    else if (!strcmp(argv[1], "hello"))
        echo = 0;
    else
        usage();
    const char *iface = "127.0.0.1";
    int port = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interface") && i + 1 < argc)
            iface = argv[++i];
        else
            usage();
    }
    if (port < 0 || port > 65535) usage();

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, iface, &addr.sin_addr) != 1) {
        fprintf(stderr, "libevent_server: bad --interface %s (IPv4 address expected)\n", iface);
        return 2;
    }

    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "libevent_server: event_base_new failed\n");
        return 1;
    }
    struct evconnlistener *listener =
        evconnlistener_new_bind(base, echo ? echo_accept_cb : hello_accept_cb, NULL,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
                                (struct sockaddr *)&addr, sizeof addr);
    if (!listener) {
        perror("libevent_server: bind");
        return 1;
    }
    evconnlistener_set_error_cb(listener, accept_error_cb);

    struct event *sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
    struct event *sigint = evsignal_new(base, SIGINT, signal_cb, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    socklen_t alen = sizeof addr;
    getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&addr, &alen);
    printf("listening on %s:%d\n", iface, ntohs(addr.sin_port));
    fflush(stdout);

    event_base_dispatch(base);

    event_free(sigterm);
    event_free(sigint);
    evconnlistener_free(listener);
    event_base_free(base);
    return 0;
}
