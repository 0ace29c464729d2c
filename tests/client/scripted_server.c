/*
 * scripted_server.c — see scripted_server.h. Scenarios:
 *   ok            normal answer (SSE when the request says "stream":true,
 *                 else JSON); reasoning_content + content, usage
 *   think         content with <think> tags cut across chunks
 *   tools         tool_calls deltas (two calls, arguments in pieces)
 *   r429          first request 429 + Retry-After: 1, then ok
 *   r500          first request 500, then ok
 *   r503          always 503 + Retry-After: 0
 *   r400          400 with an OpenAI error JSON (no retry expected)
 *   dropfirst     first request: connection closed without a response, then ok
 *   badsse        200 text/event-stream whose body is not SSE
 *   badjson       an SSE event that is not JSON
 *   stall         one content chunk, then silence until the client leaves
 *   drop          one content chunk, then the connection is cut mid-body
 *   miderror      one content chunk, then {"error":{...}} as data
 *   nodone        one content chunk, then a clean end without finish/[DONE]
 *   nostream      always answers with plain JSON, even when asked to stream
 * and GET .../models for any scenario.
 * Streaming bodies use chunked encoding, so a cut is visible to the client.
 */
#include "scripted_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SCENARIOS 32
#define REQUEST_MAX (1 << 20)

struct scripted_server {
    int listen_fd, port;
    int stop_pipe[2];
    pthread_t thread;
    pthread_mutex_t lock;
    char names[MAX_SCENARIOS][32];
    int counts[MAX_SCENARIOS];
    char *last_headers, *last_body;
};

static void send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) return;
        data += n, len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

static void send_chunk(int fd, const char *s) {
    char head[32];
    snprintf(head, sizeof head, "%zx\r\n", strlen(s));
    send_str(fd, head);
    send_str(fd, s);
    send_str(fd, "\r\n");
}

static void send_event(int fd, const char *json) {
    char buf[2048];
    snprintf(buf, sizeof buf, "data: %s\n\n", json);
    send_chunk(fd, buf);
}

static void start_stream(int fd) {
    send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n");
}

static void end_stream(int fd) { send_str(fd, "0\r\n\r\n"); }

static void send_json(int fd, int status, const char *reason, const char *extra_headers, const char *body) {
    char head[512];
    snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
             "Connection: close\r\n\r\n", status, reason, strlen(body), extra_headers ? extra_headers : "");
    send_str(fd, head);
    send_str(fd, body);
}

#define CHUNK(delta) "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":" delta "}]}"

static void answer_ok(int fd, bool stream) {
    if (!stream) {
        send_json(fd, 200, "OK", NULL,
                  "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                  "\"content\":\"<think>\\nhm\\n</think>\\n\\nHello world\"},\"finish_reason\":\"stop\"}],"
                  "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}");
        return;
    }
    start_stream(fd);
    send_str(fd, "f\r\n: keep-alive\n\n\r\n"); /* a comment, 15 bytes */
    send_event(fd, CHUNK("{\"role\":\"assistant\",\"content\":\"\"}"));
    send_event(fd, CHUNK("{\"reasoning_content\":\"Thinking\"}"));
    send_event(fd, CHUNK("{\"reasoning_content\":\" hard\"}"));
    send_event(fd, CHUNK("{\"content\":\"Hello\"}"));
    send_event(fd, CHUNK("{\"content\":\" world\"}"));
    send_event(fd, "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}");
    send_event(fd, "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}");
    send_event(fd, "[DONE]");
    end_stream(fd);
}

static void answer_think(int fd) {
    start_stream(fd);
    /* Two events in one chunk, and a chunk that cuts an event in half. */
    send_chunk(fd, "data: " CHUNK("{\"content\":\"<thi\"}") "\n\ndata: " CHUNK("{\"content\":\"nk>\\nabc\"}") "\n\nda");
    send_chunk(fd, "ta: " CHUNK("{\"content\":\"</th\"}") "\r\n\r\n");
    send_event(fd, CHUNK("{\"content\":\"ink>\\n\\nDone\"}"));
    send_event(fd, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}");
    send_event(fd, "[DONE]");
    end_stream(fd);
}

static void answer_tools(int fd) {
    start_stream(fd);
    send_event(fd, CHUNK("{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
                         "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}"));
    send_event(fd, CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}"));
    send_event(fd, CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}"));
    send_event(fd, CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\","
                         "\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}"));
    send_event(fd, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}");
    send_event(fd, "[DONE]");
    end_stream(fd);
}

/* Waits (bounded) until the client closes its end. */
static void wait_for_client_close(int fd) {
    char buf[256];
    for (int i = 0; i < 100; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0 && recv(fd, buf, sizeof buf, 0) <= 0) return;
    }
}

static int scenario_index(scripted_server *s, const char *name) {
    for (int i = 0; i < MAX_SCENARIOS; i++) {
        if (!s->names[i][0]) snprintf(s->names[i], sizeof s->names[i], "%s", name);
        if (strcmp(s->names[i], name) == 0) return i;
    }
    return MAX_SCENARIOS - 1;
}

static void handle(scripted_server *s, int fd) {
    /* Read the header block, then Content-Length bytes of body. */
    char *req = malloc(REQUEST_MAX + 1);
    size_t len = 0;
    char *body = NULL;
    size_t want = 0;
    while (len < REQUEST_MAX) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t n = recv(fd, req + len, REQUEST_MAX - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
        req[len] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (!end) continue;
        body = end + 4;
        const char *cl = strcasestr(req, "\r\ncontent-length:");
        want = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
        if ((size_t)(req + len - body) >= want) break;
    }
    if (!body) {
        free(req);
        return;
    }
    body[-2] = '\0';
    char method[8] = "", path[256] = "";
    sscanf(req, "%7s %255s", method, path);
    char scenario[32] = "";
    sscanf(path, "/%31[^/]", scenario);
    pthread_mutex_lock(&s->lock);
    int k = scenario_index(s, scenario);
    int count = ++s->counts[k];
    free(s->last_headers), free(s->last_body);
    s->last_headers = strdup(req);
    s->last_body = strndup(body, want);
    pthread_mutex_unlock(&s->lock);
    bool stream = strstr(body, "\"stream\":true") != NULL;

    if (strstr(path, "/models")) {
        send_json(fd, 200, "OK", NULL, "{\"object\":\"list\",\"data\":[{\"id\":\"scripted-model\",\"object\":\"model\"},"
                                       "{\"id\":\"second\\u001b[2J\",\"object\":\"model\"}]}");
    } else if (strcmp(scenario, "r429") == 0 && count == 1) {
        send_json(fd, 429, "Too Many Requests", "Retry-After: 1\r\n", "{\"error\":{\"message\":\"slow down\"}}");
    } else if (strcmp(scenario, "r500") == 0 && count == 1) {
        send_json(fd, 500, "Internal Server Error", NULL, "{\"error\":{\"message\":\"boom\"}}");
    } else if (strcmp(scenario, "r503") == 0) {
        send_json(fd, 503, "Service Unavailable", "Retry-After: 0\r\n", "{\"error\":{\"message\":\"overloaded\"}}");
    } else if (strcmp(scenario, "r400") == 0) {
        send_json(fd, 400, "Bad Request", NULL,
                  "{\"error\":{\"message\":\"The model `nope` does not exist.\",\"type\":\"invalid_request_error\"}}");
    } else if (strcmp(scenario, "dropfirst") == 0 && count == 1) {
        /* nothing: the connection just closes */
    } else if (strcmp(scenario, "badsse") == 0) {
        start_stream(fd);
        send_chunk(fd, "<html><body>Bad gateway</body></html>\n\n");
        end_stream(fd);
    } else if (strcmp(scenario, "badjson") == 0) {
        start_stream(fd);
        send_chunk(fd, "data: {not json\n\n");
        end_stream(fd);
    } else if (strcmp(scenario, "stall") == 0) {
        start_stream(fd);
        send_event(fd, CHUNK("{\"content\":\"partial\"}"));
        wait_for_client_close(fd);
    } else if (strcmp(scenario, "drop") == 0) {
        start_stream(fd);
        send_event(fd, CHUNK("{\"content\":\"partial\"}"));
        send_str(fd, "40\r\ndata: {\"choi"); /* half a chunk, then the cut */
    } else if (strcmp(scenario, "miderror") == 0) {
        start_stream(fd);
        send_event(fd, CHUNK("{\"content\":\"partial\"}"));
        send_event(fd, "{\"error\":{\"message\":\"engine overloaded mid-stream\",\"code\":503}}");
        end_stream(fd);
    } else if (strcmp(scenario, "nodone") == 0) {
        start_stream(fd);
        send_event(fd, CHUNK("{\"content\":\"partial\"}"));
        end_stream(fd);
    } else if (strcmp(scenario, "think") == 0) {
        answer_think(fd);
    } else if (strcmp(scenario, "tools") == 0) {
        answer_tools(fd);
    } else {
        answer_ok(fd, stream && strcmp(scenario, "nostream") != 0);
    }
    free(req);
}

static void *serve(void *arg) {
    scripted_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN}, {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) continue;
        handle(s, fd);
        shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    return NULL;
}

scripted_server *scripted_server_start(void) {
    scripted_server *s = calloc(1, sizeof *s);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->listen_fd, 16) != 0 || getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen) != 0 ||
        pipe(s->stop_pipe) != 0) {
        perror("scripted server");
        exit(1);
    }
    s->port = ntohs(addr.sin_port);
    pthread_mutex_init(&s->lock, NULL);
    pthread_create(&s->thread, NULL, serve, s);
    return s;
}

int scripted_server_port(const scripted_server *s) { return s->port; }

int scripted_server_count(scripted_server *s, const char *scenario) {
    pthread_mutex_lock(&s->lock);
    int n = 0;
    for (int i = 0; i < MAX_SCENARIOS; i++)
        if (strcmp(s->names[i], scenario) == 0) n = s->counts[i];
    pthread_mutex_unlock(&s->lock);
    return n;
}

char *scripted_server_last_headers(scripted_server *s) {
    pthread_mutex_lock(&s->lock);
    char *h = strdup(s->last_headers ? s->last_headers : "");
    pthread_mutex_unlock(&s->lock);
    return h;
}

char *scripted_server_last_body(scripted_server *s) {
    pthread_mutex_lock(&s->lock);
    char *b = strdup(s->last_body ? s->last_body : "");
    pthread_mutex_unlock(&s->lock);
    return b;
}

void scripted_server_stop(scripted_server *s) {
    if (write(s->stop_pipe[1], "x", 1) != 1) perror("scripted server stop");
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    free(s->last_headers);
    free(s->last_body);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
