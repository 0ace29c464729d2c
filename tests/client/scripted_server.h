/*
 * scripted_server.h — a tiny HTTP/1.1 server for the client tests, on
 * 127.0.0.1 and a kernel-chosen port, run on its own thread. The first path
 * segment picks a scenario ("/r429/v1/chat/completions" → "r429"); every
 * response closes its connection. It counts requests per scenario and keeps
 * the last request's headers and body for the test to inspect.
 */
#ifndef CINFER_TEST_SCRIPTED_SERVER_H
#define CINFER_TEST_SCRIPTED_SERVER_H

#include <stddef.h>

typedef struct scripted_server scripted_server;

scripted_server *scripted_server_start(void);
int scripted_server_port(const scripted_server *s);
/* Requests seen for one scenario so far. */
int scripted_server_count(scripted_server *s, const char *scenario);
/* Copies of the last request's header block and body (caller frees). */
char *scripted_server_last_headers(scripted_server *s);
char *scripted_server_last_body(scripted_server *s);
void scripted_server_stop(scripted_server *s);

#endif
