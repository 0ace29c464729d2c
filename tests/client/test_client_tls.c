/*
 * test_client_tls.c — HTTPS with certificate verification, for real: a CA
 * and a server certificate are generated with openssl, nginx (not the
 * system service: its own config, pid and logs under the build folder, a
 * free port) terminates TLS in front of the scripted server with proxy
 * buffering off, and the client must
 *   - stream an answer when given the CA as ca_bundle, and
 *   - refuse the connection with a certificate error without it.
 * With UPSTREAM_PORT, nginx fronts that server instead (`cinfer serve`, from
 * test_client_serve.sh) and the check is a short real generation.
 * Exits 77 (skipped, reason printed) when openssl or nginx is missing or
 * nginx cannot run here.
 * usage: test_client_tls WORKDIR [UPSTREAM_PORT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cinfer.h"
#include "scripted_server.h"
#include "test.h"
#include "util/util.h"

#define SKIP 77

static char workdir[512];
static pid_t nginx_pid = -1;

static int skip(const char *why) {
    printf("SKIP: %s\n", why);
    return SKIP;
}

static const char *find_program(const char *name, char *out, size_t size) {
    const char *dirs[] = {"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(out, size, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0) return out;
    }
    return NULL;
}

static int run_shell(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void print_nginx_log(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "tail -n 20 '%s/error.log' 2>/dev/null", workdir);
    if (run_shell(cmd) != 0) printf("(no nginx log)\n");
}

static void stop_nginx(void) {
    if (nginx_pid <= 0) return;
    kill(nginx_pid, SIGTERM);
    waitpid(nginx_pid, NULL, 0);
    nginx_pid = -1;
}

static int make_certificates(const char *openssl) {
    char cmd[6144];
    snprintf(cmd, sizeof cmd,
             "cd '%1$s' && "
             "'%2$s' req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem "
             "-days 2 -subj '/CN=cinfer test CA' -addext 'basicConstraints=critical,CA:TRUE' "
             "-addext 'keyUsage=critical,keyCertSign,cRLSign' && "
             "'%2$s' req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr "
             "-subj '/CN=127.0.0.1' && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n"
             "keyUsage=digitalSignature\\nextendedKeyUsage=serverAuth\\n' > server.ext && "
             "'%2$s' x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
             "-extfile server.ext",
             workdir, openssl);
    char quiet[8192];
    snprintf(quiet, sizeof quiet, "(%s) > '%s/openssl.log' 2>&1", cmd, workdir);
    return run_shell(quiet);
}

static int start_nginx(const char *nginx, int port, int upstream) {
    char path[1200];
    snprintf(path, sizeof path, "%s/nginx.conf", workdir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "%1$s"
            "worker_processes 1;\n"
            "daemon off;\n"
            "pid %2$s/nginx.pid;\n"
            "error_log %2$s/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "  access_log off;\n"
            "  client_body_temp_path %2$s/tmp_body;\n"
            "  proxy_temp_path %2$s/tmp_proxy;\n"
            "  fastcgi_temp_path %2$s/tmp_fastcgi;\n"
            "  uwsgi_temp_path %2$s/tmp_uwsgi;\n"
            "  scgi_temp_path %2$s/tmp_scgi;\n"
            "  server {\n"
            "    listen 127.0.0.1:%3$d ssl;\n"
            "    ssl_certificate %2$s/server.pem;\n"
            "    ssl_certificate_key %2$s/server.key;\n"
            "    location / {\n"
            "      proxy_pass http://127.0.0.1:%4$d;\n"
            "      proxy_http_version 1.1;\n"
            "      proxy_buffering off;\n"
            "    }\n"
            "  }\n"
            "}\n",
            geteuid() == 0 ? "user root;\n" : "", workdir, port, upstream);
    fclose(f);
    char errlog[1200];
    snprintf(errlog, sizeof errlog, "%s/error.log", workdir);
    pid_t pid = fork();
    if (pid == 0) {
        execl(nginx, nginx, "-p", workdir, "-c", path, "-e", errlog, (char *)NULL);
        _exit(127);
    }
    nginx_pid = pid;
    /* Ready when the port accepts; bounded, and stops early if nginx died. */
    for (int i = 0; i < 200; i++) {
        if (port_accepts(port)) return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            nginx_pid = -1;
            return -1;
        }
        struct timespec ts = {0, 25 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    stop_nginx();
    return -1;
}

static bool on_delta(void *user, const char *t, size_t tl, const char *c, size_t cl) {
    (void)t, (void)tl, (void)c;
    *(size_t *)user += cl;
    return true;
}

/* Scripted upstream: its "ok" scenario. Real upstream: /v1, the model it lists. */
static bool real_upstream;

static int chat_over_tls(int port, const char *ca_bundle, cinfer_result *res, cinfer_error *err, size_t *streamed) {
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/%s", port, real_upstream ? "v1" : "ok/v1");
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    ro.base_url = url;
    ro.model = real_upstream ? NULL : "m";
    ro.ca_bundle = ca_bundle;
    ro.timeout = 20;
    ro.idle_timeout = 5;
    cinfer_model *m = cinfer_model_open_remote(&ro, err);
    if (!m) return err->code;
    cinfer_gen_options go;
    cinfer_gen_options_init(&go);
    go.on_delta = on_delta, go.user = streamed;
    go.max_new_tokens = 8;
    int rc = cinfer_chat(m, NULL, 0, NULL, "hi", &go, res, err);
    cinfer_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_client_tls WORKDIR\n");
        return 2;
    }
    snprintf(workdir, sizeof workdir, "%s", argv[1]);
    setenv("no_proxy", "127.0.0.1,localhost", 1); /* the client honours proxy variables */
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    char openssl[256], nginx[256];
    if (!find_program("openssl", openssl, sizeof openssl)) return skip("openssl is not installed");
    if (!find_program("nginx", nginx, sizeof nginx))
        return skip("nginx is not installed (Debian package nginx; scripts/install-deps.sh installs it)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%1$s' && mkdir -p '%1$s'", workdir);
    if (run_shell(cmd) != 0) return skip("cannot create the work folder");
    if (make_certificates(openssl) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/openssl.log'", workdir);
        run_shell(cmd);
        return skip("openssl could not generate the test certificates");
    }
    real_upstream = argc > 2;
    scripted_server *server = real_upstream ? NULL : scripted_server_start();
    int upstream = real_upstream ? atoi(argv[2]) : scripted_server_port(server);
    int port = free_port();
    if (port < 0 || upstream <= 0 || start_nginx(nginx, port, upstream) != 0) {
        print_nginx_log();
        if (server) scripted_server_stop(server);
        return skip("nginx cannot run here (its log is above)");
    }

    char ca[1200];
    snprintf(ca, sizeof ca, "%s/ca.pem", workdir);
    cinfer_result res;
    cinfer_error err = {0};
    size_t streamed = 0;
    int rc = chat_over_tls(port, ca, &res, &err, &streamed);
    CHECK_MSG(rc == 0, "with the CA: %s", err.message);
    if (rc == 0 && !real_upstream) {
        CHECK_STREQ(res.content, "Hello world");
        CHECK_STREQ(res.thinking, "Thinking hard");
        CHECK(streamed == strlen("Hello world"));
    } else if (rc == 0) {
        CHECK(res.completion_tokens > 0);
        CHECK(streamed == strlen(res.thinking) + strlen(res.content));
        printf("through nginx: %d tokens, finish_reason %s\n", res.completion_tokens, res.finish_reason);
    }
    if (rc == 0) cinfer_result_free(&res);
    int requests_before = server ? scripted_server_count(server, "ok") : 0;
    rc = chat_over_tls(port, NULL, &res, &err, &streamed);
    CHECK(rc == CINFER_ERR_NETWORK);
    CHECK_MSG(strstr(err.message, "certificate") != NULL, "without the CA: %s", err.message);
    if (server) CHECK(scripted_server_count(server, "ok") == requests_before); /* nothing got through, no retries either */
    printf("without the CA: %s\n", err.message);

    stop_nginx();
    if (server) scripted_server_stop(server);
    TEST_MAIN_END();
}
