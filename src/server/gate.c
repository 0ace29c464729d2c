/*
 * gate.c — the admission gate: `cinfer serve` accepts its connections here
 * and hands one to libmicrohttpd only once its request head is complete and
 * sane.
 *
 * Why: libmicrohttpd 0.9.75 gives every connection a thread from accept on,
 * and its timeout is idle-based, so a client that trickles header bytes
 * (slowloris) holds a thread for ever; the errors it produces itself (431,
 * malformed chunking, an invalid Content-Length) are HTML, and for
 * `Content-Length: -5` it writes its status line and headers twice. It has no
 * hook for either, so the gate sees every first request head before MHD:
 *
 *  - one thread, one epoll set over the listening socket and the pending
 *    connections (accepted, head not complete yet): a pending connection
 *    costs a file descriptor and a slot, no thread;
 *  - the head is read with recv(MSG_PEEK), never consumed: once it is
 *    complete and passes srv_gate_check_head, the socket goes to MHD
 *    (MHD_add_connection), which reads the same bytes, body included, as if
 *    it had accepted the connection itself. The sockets are edge-triggered,
 *    so a peeked (still readable) head wakes the gate only when more arrives;
 *  - a total deadline, header_timeout_s from accept (not an idle timeout):
 *    a head not complete by then is answered 408 and closed. Every pending
 *    connection has the same timeout, so accept order is deadline order and
 *    a FIFO list gives the next one to expire;
 *  - caps: max_pending connections in all, max_pending_per_ip from one
 *    address; beyond either the oldest pending one (of that address) is
 *    closed, so a flood ages out its own connections first;
 *  - an answer from the gate is OpenAI-shaped JSON (srv_error_json) with
 *    Connection: close. The gate first consumes what the client sent (a
 *    close with unread bytes sends a RST, which can destroy the answer in
 *    the client's buffers), shuts its side down and then reads and drops for
 *    LINGER_S (a lingering close, as nginx and Apache do), so the answer
 *    arrives even while the client is still sending a body.
 *
 * MHD's memory per connection is sized so that any head the gate admits
 * parses (srv_gate_mhd_memory_limit). What remains of MHD's own error paths:
 * follow-up requests on a keep-alive connection are parsed by MHD alone
 * (http.c still answers 413 and 401 from their headers); a malformed
 * follow-up gets MHD's HTML answer, and a slow one holds its connection's
 * thread for idle_timeout_s, bounded by max_connections_per_ip.
 */
#include "server/gate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_S 2.0         /* an answered client may go on sending this long before it is closed */
#define MAX_HEADER_LINES 100 /* per head, as Apache's LimitRequestFields; bounds MHD's per-header memory too */
#define DISCARD_ROUNDS 64    /* reads per wake-up of an answered connection: one client cannot hold the loop */
#define EV_LISTEN UINT32_MAX
#define EV_WAKE (UINT32_MAX - 1)

/* ---------------------------------------------------------- head checks */

static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

/* METHOD SP TARGET SP HTTP/1.x */
static bool request_line_ok(const char *p, size_t len) {
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)p[i])) i++;
    if (i == 0 || i > 32 || i >= len || p[i] != ' ') return false;
    size_t t = ++i;
    while (i < len && (unsigned char)p[i] > 0x20 && p[i] != 0x7F) i++;
    if (i == t || i >= len || p[i] != ' ') return false;
    i++;
    return len - i == 8 && (memcmp(p + i, "HTTP/1.1", 8) == 0 || memcmp(p + i, "HTTP/1.0", 8) == 0);
}

/* Content-Length: 1 to 19 digits, nothing else (no sign, no list). */
static bool parse_length(const char *v, size_t len, unsigned long long *out) {
    while (len && (*v == ' ' || *v == '\t')) v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
    if (len == 0 || len > 19) return false;
    unsigned long long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') return false;
        n = n * 10 + (unsigned)(v[i] - '0');
    }
    *out = n;
    return true;
}

/* One line: its length without "\n" (and a "\r" before it); NULL when no
 * "\n" is in [p, end). */
static const char *line_end(const char *p, const char *end, size_t *len) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return NULL;
    *len = (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
    return nl + 1;
}

int srv_gate_check_head(const char *buf, size_t n, size_t max_header_bytes, unsigned max_body_bytes, srv_error *e) {
    const char *p = buf, *end = buf + n;
    while (p < end && (*p == '\r' || *p == '\n')) p++; /* empty lines before the request line are ignored */
    size_t len;
    const char *next = line_end(p, end, &len);
    if (!next) {
        /* a partial request line with a control byte (TLS, binary) fails now */
        for (const char *q = p; q < end; q++)
            if (is_ctl((unsigned char)*q) && *q != '\r') return srv_fail(e, 400, NULL, "malformed request line"), -1;
        goto incomplete;
    }
    if (!request_line_ok(p, len)) return srv_fail(e, 400, NULL, "malformed request line"), -1;
    int lines = 0;
    bool have_cl = false, have_te = false;
    unsigned long long cl = 0;
    for (p = next; (next = line_end(p, end, &len)) != NULL; p = next) {
        if (len == 0) break;
        if ((size_t)(next - buf) > max_header_bytes) break;
        if (++lines > MAX_HEADER_LINES)
            return srv_fail(e, 431, NULL, "more than %d header lines", MAX_HEADER_LINES), -1;
        const char *colon = memchr(p, ':', len);
        size_t name = colon ? (size_t)(colon - p) : 0;
        bool ok = name > 0;
        for (size_t i = 0; ok && i < name; i++) ok = is_tchar((unsigned char)p[i]); /* also rejects obs-fold */
        for (size_t i = name + 1; ok && i < len; i++) ok = !is_ctl((unsigned char)p[i]);
        if (!ok) return srv_fail(e, 400, NULL, "malformed header line %d", lines), -1;
        const char *v = colon + 1;
        size_t vlen = len - name - 1;
        if (name == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            if (have_cl) return srv_fail(e, 400, NULL, "more than one Content-Length header"), -1;
            if (!parse_length(v, vlen, &cl))
                return srv_fail(e, 400, NULL, "invalid Content-Length '%.*s'", (int)(vlen < 32 ? vlen : 32), v), -1;
            have_cl = true;
        } else if (name == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            have_te = true;
        }
    }
    if (!next || (size_t)(next - buf) > max_header_bytes) goto incomplete;
    if (have_te) {
        srv_fail(e, 411, NULL, "Transfer-Encoding is not supported: send the body with a Content-Length header");
        e->code = "length_required";
        return -1;
    }
    if (have_cl && cl > max_body_bytes) return srv_fail(e, 413, NULL, "request body exceeds %u bytes", max_body_bytes), -1;
    return 1;
incomplete:
    if (n < max_header_bytes) return 0;
    return srv_fail(e, 431, NULL, "the request head exceeds %zu bytes", max_header_bytes), -1;
}

size_t srv_gate_mhd_memory_limit(unsigned max_header_bytes) {
    /* MHD keeps the head in its read buffer and allocates an entry per
     * header line from the same pool, then builds the response headers and
     * buffers body reads there: twice the head, the entries (under 128 bytes
     * each) and 32 KiB for the rest. */
    return 2 * (size_t)max_header_bytes + MAX_HEADER_LINES * 128 + (32u << 10);
}

/* ------------------------------------------------------------ the gate */

enum { P_FREE, P_HEAD, P_LINGER };

typedef struct pending {
    int fd, state;
    double deadline;
    struct sockaddr_in addr;
    int prev, next;              /* in its state's list, oldest (= earliest deadline) first */
} pending;

typedef struct plist {
    int first, last;
} plist;

struct srv_gate {
    server *s;
    struct MHD_Daemon *d;
    int listen_fd, wake_fd, ep, port;
    bool started, listen_paused;
    double resume_at;            /* out of file descriptors: accept again then */
    pending *p;                  /* max_pending slots */
    int *free_ids, n_free;
    plist heads, lingers;
    char *buf;                   /* peeks and discarded input: max_header_bytes */
    pthread_t thread;
};

static plist *list_of(srv_gate *g, int i) { return g->p[i].state == P_HEAD ? &g->heads : &g->lingers; }

static void list_push(srv_gate *g, int i) {
    plist *l = list_of(g, i);
    g->p[i].prev = l->last;
    g->p[i].next = -1;
    if (l->last >= 0) g->p[l->last].next = i;
    else l->first = i;
    l->last = i;
}

static void list_remove(srv_gate *g, int i) {
    plist *l = list_of(g, i);
    pending *x = &g->p[i];
    if (x->prev >= 0) g->p[x->prev].next = x->next;
    else l->first = x->next;
    if (x->next >= 0) g->p[x->next].prev = x->prev;
    else l->last = x->prev;
}

/* Frees slot i; closes its socket unless MHD took it. */
static void slot_free(srv_gate *g, int i, bool close_fd) {
    list_remove(g, i);
    epoll_ctl(g->ep, EPOLL_CTL_DEL, g->p[i].fd, NULL);
    if (close_fd) close(g->p[i].fd);
    g->p[i].state = P_FREE;
    g->free_ids[g->n_free++] = i;
}

/* Reads and drops what the client sent; true at its end (or an error). */
static bool discard_input(srv_gate *g, int fd) {
    for (int k = 0; k < DISCARD_ROUNDS; k++) {
        ssize_t r = recv(fd, g->buf, g->s->opt.max_header_bytes, MSG_DONTWAIT);
        if (r == 0) return true;
        if (r < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    }
    return false;
}

/* Answers slot i with e as JSON (Connection: close); lingers or closes. */
static void answer(srv_gate *g, int i, const srv_error *e, bool linger) {
    pending *x = &g->p[i];
    bool eof = discard_input(g, x->fd);
    json_t *obj = srv_error_json(e);
    char *body = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    ci_buf out = {0};
    const char *reason = MHD_get_reason_phrase_for((unsigned)e->status);
    ci_buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n",
                  e->status, reason && *reason ? reason : "Error", body ? strlen(body) : 2);
    if (e->retry_after_s > 0) ci_buf_printf(&out, "Retry-After: %d\r\n", e->retry_after_s);
    ci_buf_puts(&out, "\r\n");
    ci_buf_puts(&out, body ? body : "{}");
    free(body);
    /* a few hundred bytes into an empty send buffer: one send */
    ssize_t w = send(x->fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    ci_buf_free(&out);
    ci_metrics_count_request(&g->s->metrics, e->status);
    if (!linger || eof) return slot_free(g, i, true);
    shutdown(x->fd, SHUT_WR);
    list_remove(g, i);
    x->state = P_LINGER;
    x->deadline = ci_now_seconds() + LINGER_S;
    list_push(g, i);
}

static void hand_off(srv_gate *g, int i) {
    pending *x = &g->p[i];
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    if (di && di->num_connections >= (unsigned)g->s->opt.max_connections) {
        srv_error e = {.status = 503, .code = "server_overloaded", .retry_after_s = 1};
        snprintf(e.msg, sizeof e.msg, "too many open connections (%d); retry later", g->s->opt.max_connections);
        return answer(g, i, &e, true);
    }
    int fd = x->fd;
    struct sockaddr_in a = x->addr;
    slot_free(g, i, false);
    /* On failure (MHD's per-address cap, no memory) MHD closed the socket. */
    MHD_add_connection(g->d, fd, (const struct sockaddr *)&a, sizeof a);
}

static void on_head_event(srv_gate *g, int i, uint32_t events) {
    pending *x = &g->p[i];
    const ci_server_options *o = &g->s->opt;
    ssize_t n = recv(x->fd, g->buf, o->max_header_bytes, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) return slot_free(g, i, true); /* gone before its head was complete */
    srv_error e = {0};
    int rc = srv_gate_check_head(g->buf, (size_t)n, o->max_header_bytes, o->max_body_bytes, &e);
    if (rc > 0) return hand_off(g, i);
    if (rc < 0) return answer(g, i, &e, true);
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) slot_free(g, i, true); /* ended inside its head */
}

/* The oldest pending connection, of `addr` when not NULL. */
static int oldest(const srv_gate *g, const struct in_addr *addr) {
    const plist *ls[2] = {&g->lingers, &g->heads};
    for (int k = 0; k < 2; k++)
        for (int i = ls[k]->first; i >= 0; i = g->p[i].next)
            if (!addr || g->p[i].addr.sin_addr.s_addr == addr->s_addr) return i;
    return -1;
}

/* A linear count: at most max_pending slots, once per accepted connection. */
static int count_from(const srv_gate *g, const struct in_addr *addr) {
    int n = 0;
    const plist *ls[2] = {&g->lingers, &g->heads};
    for (int k = 0; k < 2; k++)
        for (int i = ls[k]->first; i >= 0; i = g->p[i].next) n += g->p[i].addr.sin_addr.s_addr == addr->s_addr;
    return n;
}

static void on_accepted(srv_gate *g, int fd, const struct sockaddr_in *a) {
    const ci_server_options *o = &g->s->opt;
    if (count_from(g, &a->sin_addr) >= o->max_pending_per_ip) slot_free(g, oldest(g, &a->sin_addr), true);
    if (g->n_free == 0) slot_free(g, oldest(g, NULL), true);
    int i = g->free_ids[--g->n_free];
    pending *x = &g->p[i];
    *x = (pending){.fd = fd, .state = P_HEAD, .addr = *a, .deadline = ci_now_seconds() + o->header_timeout_s};
    list_push(g, i);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u32 = (uint32_t)i};
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) != 0) return slot_free(g, i, true);
    on_head_event(g, i, 0); /* the head often came with the connection */
}

static void accept_all(srv_gate *g) {
    for (;;) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            on_accepted(g, fd, &a);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
            int old = oldest(g, NULL); /* out of descriptors: a pending one makes room */
            if (old >= 0) {
                slot_free(g, old, true);
                continue;
            }
            /* nothing to close: stop watching the socket for a moment, or
             * its readiness would spin this loop */
            epoll_ctl(g->ep, EPOLL_CTL_DEL, g->listen_fd, NULL);
            g->listen_paused = true;
            g->resume_at = ci_now_seconds() + 0.1;
        }
        return;
    }
}

static void expire(srv_gate *g, double now) {
    while (g->heads.first >= 0 && g->p[g->heads.first].deadline <= now) {
        srv_error e = {.status = 408};
        snprintf(e.msg, sizeof e.msg, "the request head was not complete within %d s", g->s->opt.header_timeout_s);
        answer(g, g->heads.first, &e, false);
    }
    while (g->lingers.first >= 0 && g->p[g->lingers.first].deadline <= now) slot_free(g, g->lingers.first, true);
    if (g->listen_paused && now >= g->resume_at) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_LISTEN};
        epoll_ctl(g->ep, EPOLL_CTL_ADD, g->listen_fd, &ev);
        g->listen_paused = false;
    }
}

static int next_timeout_ms(const srv_gate *g, double now) {
    double t = -1;
    if (g->heads.first >= 0) t = g->p[g->heads.first].deadline;
    if (g->lingers.first >= 0 && (t < 0 || g->p[g->lingers.first].deadline < t)) t = g->p[g->lingers.first].deadline;
    if (g->listen_paused && (t < 0 || g->resume_at < t)) t = g->resume_at;
    if (t < 0) return -1;
    return t <= now ? 0 : (int)((t - now) * 1000) + 1;
}

static void *gate_main(void *arg) {
    srv_gate *g = arg;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(g->ep, evs, 64, next_timeout_ms(g, ci_now_seconds()));
        for (int k = 0; k < n; k++) {
            uint32_t id = evs[k].data.u32;
            if (id == EV_WAKE) return NULL;
            if (id == EV_LISTEN) accept_all(g);
            else if (g->p[id].state == P_HEAD) on_head_event(g, (int)id, evs[k].events);
            else if (g->p[id].state == P_LINGER && discard_input(g, g->p[id].fd)) slot_free(g, (int)id, true);
        }
        expire(g, ci_now_seconds());
    }
}

/* Room for every pending and admitted connection: 2,000 slow clients must
 * not run the process out of descriptors (the soft limit is often 1024). */
static void raise_fd_limit(const ci_server_options *o) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)o->max_pending + (rlim_t)o->max_connections + 256;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

srv_gate *srv_gate_open(server *s, const struct sockaddr_in *addr, cinfer_error *err) {
    const ci_server_options *o = &s->opt;
    raise_fd_limit(o);
    srv_gate *g = ci_calloc(1, sizeof *g);
    g->s = s;
    g->wake_fd = g->ep = -1;
    g->heads = g->lingers = (plist){-1, -1};
    g->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (g->listen_fd >= 0) setsockopt(g->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (g->listen_fd < 0 || bind(g->listen_fd, (const struct sockaddr *)addr, sizeof *addr) != 0 ||
        listen(g->listen_fd, SOMAXCONN) != 0) {
        char host[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &addr->sin_addr, host, sizeof host);
        ci_error(err, CINFER_ERR_IO, "cannot listen on %s:%d (%s)", host, ntohs(addr->sin_port), strerror(errno));
        srv_gate_close(g);
        return NULL;
    }
    struct sockaddr_in bound;
    socklen_t bl = sizeof bound;
    getsockname(g->listen_fd, (struct sockaddr *)&bound, &bl);
    g->port = ntohs(bound.sin_port);
    g->p = ci_calloc((size_t)o->max_pending, sizeof *g->p);
    g->free_ids = ci_malloc((size_t)o->max_pending * sizeof *g->free_ids);
    for (int i = 0; i < o->max_pending; i++) g->free_ids[g->n_free++] = o->max_pending - 1 - i;
    g->buf = ci_malloc(o->max_header_bytes);
    return g;
}

int srv_gate_port(const srv_gate *g) { return g->port; }

int srv_gate_start(srv_gate *g, struct MHD_Daemon *d, cinfer_error *err) {
    g->d = d;
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.u32 = EV_LISTEN};
    struct epoll_event wev = {.events = EPOLLIN, .data.u32 = EV_WAKE};
    if (g->ep < 0 || g->wake_fd < 0 || epoll_ctl(g->ep, EPOLL_CTL_ADD, g->listen_fd, &lev) != 0 ||
        epoll_ctl(g->ep, EPOLL_CTL_ADD, g->wake_fd, &wev) != 0)
        return ci_error(err, CINFER_ERR_IO, "cannot set up the connection gate (%s)", strerror(errno));
    if (pthread_create(&g->thread, NULL, gate_main, g) != 0)
        return ci_error(err, CINFER_ERR_NOMEM, "cannot start the connection gate's thread");
    g->started = true;
    return CINFER_OK;
}

void srv_gate_close(srv_gate *g) {
    if (!g) return;
    if (g->started) {
        uint64_t one = 1;
        ssize_t w = write(g->wake_fd, &one, sizeof one);
        (void)w;
        pthread_join(g->thread, NULL);
    }
    const plist *ls[2] = {&g->lingers, &g->heads};
    for (int k = 0; k < 2; k++)
        for (int i = ls[k]->first; i >= 0; i = g->p[i].next) close(g->p[i].fd);
    int fds[3] = {g->listen_fd, g->wake_fd, g->ep};
    for (int k = 0; k < 3; k++)
        if (fds[k] >= 0) close(fds[k]);
    free(g->p);
    free(g->free_ids);
    free(g->buf);
    free(g);
}
