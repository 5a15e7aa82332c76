#ifndef TWINE_CLIBEVENT_OPENSSL_SHIM_H
#define TWINE_CLIBEVENT_OPENSSL_SHIM_H

// libevent's OpenSSL bufferevents and the parts of OpenSSL Twine uses.
// System headers first, as in CLibevent's shim.h: Debian's event-config.h
// defines _GNU_SOURCE, and the other order fails with an fd_set module conflict.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

/// `SSL_CTX_set_min_proto_version` (a macro Swift cannot see).
static inline int twine_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
  return SSL_CTX_set_min_proto_version(ctx, version);
}

/// `SSL_set_tlsext_host_name`: the SNI name a client sends (a macro).
static inline int twine_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
  return SSL_set_tlsext_host_name(ssl, name);
}

/// `SSL_CTX_set_mode` (a macro in OpenSSL 3).
static inline long twine_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }

/// `SSL_CTX_add1_chain_cert` (a macro): appends `certificate` to the chain sent after the current certificate.
static inline int twine_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *certificate) {
  return (int)SSL_CTX_add1_chain_cert(ctx, certificate);
}

/// `TLS1_2_VERSION`, for `twine_SSL_CTX_set_min_proto_version`.
static inline int twine_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }

/// `SSL_OP_IGNORE_UNEXPECTED_EOF`: an EOF without close_notify reads as a clean close.
static inline uint64_t twine_SSL_OP_IGNORE_UNEXPECTED_EOF(void) { return SSL_OP_IGNORE_UNEXPECTED_EOF; }

/// `SSL_OP_NO_RENEGOTIATION`: refuse TLS 1.2 renegotiation (a DoS lever, and libevent 2.1 handles it poorly).
static inline uint64_t twine_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }

/// True when the peer's close_notify has arrived (a clean TLS close).
static inline int twine_SSL_received_shutdown(const SSL *ssl) {
  return (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

/// `SSL_set_mode` with the modes the direct TLS path writes with: `SSL_write` may take part of
/// a buffer (one record at a time), and a retry may pass the same bytes at another address.
static inline long twine_SSL_set_direct_write_modes(SSL *ssl) {
  return SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/// True when the oldest queued error is OpenSSL 3's "unexpected eof while reading": the peer
/// closed without close_notify (OpenSSL 1.1 says SSL_ERROR_SYSCALL with errno 0 instead).
static inline int twine_ERR_peek_unexpected_eof(void) {
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
  return ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
#else
  return 0;
#endif
}

#endif
