/* The libssl functions stages/kube_ws.c calls, resolved from the libssl
 * libwebsockets loads (lib/lazy_lws.c), so cpipe links no libssl itself. */
#ifndef CPIPE_LIB_LAZY_LWS_H
#define CPIPE_LIB_LAZY_LWS_H

#include <openssl/ssl.h>

X509_STORE *lazy_SSL_CTX_get_cert_store(const SSL_CTX *ctx);
int lazy_SSL_CTX_use_certificate(SSL_CTX *ctx, X509 *x);
int lazy_SSL_CTX_use_PrivateKey(SSL_CTX *ctx, EVP_PKEY *k);

#endif
