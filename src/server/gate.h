/*
 * gate.h — the admission gate in front of libmicrohttpd (gate.c explains
 * the design). Internal to src/server.
 */
#ifndef CINFER_SERVER_GATE_H
#define CINFER_SERVER_GATE_H

#include "server/server.h"

typedef struct srv_gate srv_gate;

/* Binds and listens on `addr` (port 0: the kernel picks one). NULL with
 * *err when the socket cannot be bound. Accepts nothing yet. */
srv_gate *srv_gate_open(server *s, const struct sockaddr_in *addr, cinfer_error *err);
/* The bound port. */
int srv_gate_port(const srv_gate *g);
/* Starts the gate thread: connections whose request head passes the
 * checks are handed to `d` (started with MHD_USE_NO_LISTEN_SOCKET). */
int srv_gate_start(srv_gate *g, struct MHD_Daemon *d, cinfer_error *err);
/* Stops the thread, closes the pending connections and the listening
 * socket, frees the gate. Call before MHD_stop_daemon. */
void srv_gate_close(srv_gate *g);

/* MHD's per-connection memory for a gate whose heads are at most
 * max_header_bytes: large enough that any head the gate admits parses. */
size_t srv_gate_mhd_memory_limit(unsigned max_header_bytes);

/* The checks on one request head, on the first n bytes a client sent
 * (testable alone). Returns 0 while the head is incomplete and n <
 * max_header_bytes, 1 when it is complete and acceptable, -1 with *e (the
 * answer) otherwise: 431 head over max_header_bytes or too many header
 * lines, 400 malformed request line or header line, invalid or repeated
 * Content-Length, 413 Content-Length over max_body_bytes, 411 any
 * Transfer-Encoding (clients of this API send Content-Length). */
int srv_gate_check_head(const char *buf, size_t n, size_t max_header_bytes, unsigned max_body_bytes, srv_error *e);

#endif
