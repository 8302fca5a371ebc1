/*
 * batonctl's side of the control protocol: one blocking connection to the broker
 * (a Unix socket path, "unix://PATH" or "tcp://HOST:PORT"), frames of a 4-byte
 * big-endian length and a packed CtlRequest/CtlReply (proto/bt_frame.h).
 *
 * The connection is opened by the first request and reused by later ones, so
 * `wait` polls over one connection and a chunked batch is one session. Every
 * read and write has a timeout so a hung broker cannot hang a script.
 * Failures print one line on stderr that names the endpoint; the caller only
 * passes the exit status on.
 */
#ifndef BT_CLI_CLIENT_H
#define BT_CLI_CLIENT_H

#include "baton.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest reply batonctl accepts (the broker's own frame limit is 16 MiB by
 * default; a reply may be larger, e.g. a long package list). */
#define BT_CLI_MAX_REPLY_BYTES (64u * 1024u * 1024u)

/* Default for the per-read/write timeout; BATON_CTL_TIMEOUT overrides it. */
#define BT_CLI_DEFAULT_TIMEOUT_MS 30000

typedef struct {
  /* Several brokers on one database (one active, the others standbys that
   * bind nothing): endpoints is a comma-separated list, and the first that
   * accepts a connection is the one used (endpoint, tcp). */
  const char *endpoints;   /* borrowed */
  const char *endpoint;    /* the one connected or being tried */
  char endpoint_buf[512];
  char connect_errors[2048]; /* several endpoints: why each failed, a line each */
  const char *admin_token; /* borrowed; sent only on TCP */
  int timeout_ms;
  int fd; /* -1 while not connected */
  bool tcp;
} bt_cli_conn_t;

/* Checks the syntax of a comma-separated list of endpoints without
 * connecting: each "tcp://HOST:PORT" (HOST may be [v6]), "unix://PATH" or a
 * PATH that fits a sockaddr_un. Returns 0, or BT_EINVAL with the reason in
 * err. */
int bt_cli_endpoint_check(const char *endpoint, char *err, size_t errlen);

/* Prepares a connection to one of endpoints (a comma-separated list); nothing
 * is opened yet. Borrows both strings. */
void bt_cli_conn_init(bt_cli_conn_t *c, const char *endpoint,
                      const char *admin_token, int timeout_ms);

/* Closes the socket if open. */
void bt_cli_conn_close(bt_cli_conn_t *c);

/* Sends req (this function sets its version and, on TCP, its admin token) and
 * reads one reply. Returns BT_CLI_EXIT_OK with *out set to the unpacked reply
 * (returned owned: free with baton__ctl_reply__free_unpacked) whatever its
 * status, or BT_CLI_EXIT_UNREACHABLE after printing why (connect failed, the
 * connection closed or timed out, the reply is malformed or of another protocol
 * version). After a failure the connection is closed. */
int bt_cli_conn_roundtrip(bt_cli_conn_t *c, Baton__CtlRequest *req,
                          Baton__CtlReply **out);

/* A round trip plus the status checks every command wants: a status other than
 * CTL_OK prints "batonctl: <broker's error>" and returns BT_CLI_EXIT_FAIL; an OK
 * reply whose body is not expect returns BT_CLI_EXIT_UNREACHABLE (the broker
 * speaks something else). what names the subject for a status without an error
 * text (e.g. "package 7"); may be NULL. On BT_CLI_EXIT_OK *out is returned owned. */
int bt_cli_conn_call(bt_cli_conn_t *c, Baton__CtlRequest *req,
                     Baton__CtlReply__BodyCase expect, const char *what,
                     Baton__CtlReply **out);

/* A short lowercase text for a status ("not found", "rejected", …). Static. */
const char *bt_cli_status_text(Baton__CtlStatus status);

#endif
