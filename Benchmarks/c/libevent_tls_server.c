/*
 * libevent_tls_server.c -- the echo server over TLS the way a C deployment on
 * libevent writes it: evconnlistener + bufferevent_openssl_socket_new
 * (BUFFEREVENT_SSL_ACCEPTING), the read callback moving the whole input buffer
 * to the output (evbuffer_add_buffer), straightforward idiomatic code, no tuning.
 * TLS 1.2 or newer, OpenSSL's defaults otherwise (as twine's TLS contexts).
 *
 *   libevent_tls_server echo --port P --cert CERT.pem --key KEY.pem [--interface 127.0.0.1]
 *
 * Prints exactly one line "listening on HOST:PORT" once listening.
 * Exits 0 on SIGTERM/SIGINT.
 * Link: -levent_openssl -levent_core -lssl -lcrypto.
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
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void echo_read_cb(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void event_cb(struct bufferevent *bev, short events, void *ctx) {
    (void)ctx;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *ctx) {
    (void)sa, (void)socklen;
    SSL_CTX *ssl_ctx = ctx;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = SSL_new(ssl_ctx);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(evconnlistener_get_base(l), fd, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) { /* libevent freed the SSL */
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, echo_read_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void accept_error_cb(struct evconnlistener *l, void *ctx) {
    (void)l, (void)ctx;
    int err = EVUTIL_SOCKET_ERROR();
    fprintf(stderr, "libevent_tls_server: accept: %s\n", evutil_socket_error_to_string(err));
}

static void signal_cb(evutil_socket_t sig, short events, void *base) {
    (void)sig, (void)events;
    event_base_loopbreak(base);
}

static void usage(void) {
    fprintf(stderr, "usage: libevent_tls_server echo --port P --cert CERT.pem --key KEY.pem [--interface 127.0.0.1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "echo") != 0) usage();
    const char *iface = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interface") && i + 1 < argc)
            iface = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else
            usage();
    }
    if (port < 0 || port > 65535 || !cert || !key) usage();

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!ssl_ctx || SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl_ctx) != 1) {
        fprintf(stderr, "libevent_tls_server: cannot set up TLS with %s and %s\n", cert, key);
        ERR_print_errors_fp(stderr);
        return 1;
    }

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, iface, &addr.sin_addr) != 1) {
        fprintf(stderr, "libevent_tls_server: bad --interface %s (IPv4 address expected)\n", iface);
        return 2;
    }

    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "libevent_tls_server: event_base_new failed\n");
        return 1;
    }
    struct evconnlistener *listener =
        evconnlistener_new_bind(base, accept_cb, ssl_ctx, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                4096, (struct sockaddr *)&addr, sizeof addr);
    if (!listener) {
        perror("libevent_tls_server: bind");
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
    SSL_CTX_free(ssl_ctx);
    return 0;
}
