/* kernelwire benchmark floor: how fast libzmq alone moves a Jupyter message's
 * frames between two processes, with no Python in the loop.  A Session can
 * only approach this, so results are quoted as a fraction of it.
 *
 * It uses the very libzmq that pyzmq loaded: the path is given on the command
 * line and the library is opened with dlopen(), so neither zmq.h nor a link
 * against a second libzmq is needed.  The few declarations below follow the
 * public libzmq C API; socket-type and option numbers are passed in with -D
 * by the Python builder (taken from pyzmq), with libzmq's values as defaults.
 *
 * usage: floor LIBZMQ check
 *        floor LIBZMQ pull ENDPOINT COUNT             bind PULL, receive 1+COUNT messages
 *        floor LIBZMQ push ENDPOINT COUNT SIZE...     connect PUSH, send 1+COUNT messages
 *        floor LIBZMQ echo ENDPOINT COUNT SIZE...     bind ROUTER, answer 1+COUNT requests
 *        floor LIBZMQ ping ENDPOINT COUNT SIZE...     connect DEALER, 1+COUNT round trips
 * SIZE... are the frame sizes of one message (or of the reply, for echo).
 * The first message is a warm-up: timing starts once it has gone through.
 * Output, one JSON object per line: {"endpoint": ...} once a binding role is
 * bound, then {"seconds": ...} (or {"error": ...} and exit status 1).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef KW_PUSH
#define KW_PUSH 8
#endif
#ifndef KW_PULL
#define KW_PULL 7
#endif
#ifndef KW_DEALER
#define KW_DEALER 5
#endif
#ifndef KW_ROUTER
#define KW_ROUTER 6
#endif
#ifndef KW_SNDMORE
#define KW_SNDMORE 2
#endif
#ifndef KW_LAST_ENDPOINT
#define KW_LAST_ENDPOINT 32
#endif
#ifndef KW_COPY_THRESHOLD
#define KW_COPY_THRESHOLD 65536
#endif
#define KW_MAX_FRAMES 64

/* libzmq's message is an opaque 64-byte block with 8-byte alignment */
typedef union {
    unsigned char bytes[64];
    void *align_pointer;
    double align_double;
    long long align_long;
} kw_msg;

typedef void (kw_free_fn)(void *data, void *hint);

static struct {
    void *(*ctx_new)(void);
    int (*ctx_term)(void *);
    void *(*socket)(void *, int);
    int (*close)(void *);
    int (*getsockopt)(void *, int, void *, size_t *);
    int (*bind)(void *, const char *);
    int (*connect)(void *, const char *);
    int (*send)(void *, const void *, size_t, int);
    int (*msg_init)(kw_msg *);
    int (*msg_init_data)(kw_msg *, void *, size_t, kw_free_fn *, void *);
    int (*msg_send)(kw_msg *, void *, int);
    int (*msg_recv)(kw_msg *, void *, int);
    int (*msg_close)(kw_msg *);
    int (*msg_more)(const kw_msg *);
    size_t (*msg_size)(const kw_msg *);
    int (*errno_)(void);
    const char *(*strerror)(int);
} zmq;

static int fail(const char *what) {
    const char *why = zmq.strerror && zmq.errno_ ? zmq.strerror(zmq.errno_()) : "";
    printf("{\"error\": \"%s: %s\"}\n", what, why);
    return 1;
}

static int load(const char *path) {
    /* RTLD_LAZY: the path may be pyzmq's extension, whose Python symbols
     * are never called here */
    void *lib = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (!lib) {
        printf("{\"error\": \"dlopen failed\"}\n");
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
#define KW_SYM(field, name)                                             \
    if (!(*(void **)&zmq.field = dlsym(lib, name))) {                   \
        printf("{\"error\": \"symbol %s not found\"}\n", name);         \
        return 1;                                                       \
    }
    KW_SYM(errno_, "zmq_errno")
    KW_SYM(strerror, "zmq_strerror")
    KW_SYM(ctx_new, "zmq_ctx_new")
    KW_SYM(ctx_term, "zmq_ctx_term")
    KW_SYM(socket, "zmq_socket")
    KW_SYM(close, "zmq_close")
    KW_SYM(getsockopt, "zmq_getsockopt")
    KW_SYM(bind, "zmq_bind")
    KW_SYM(connect, "zmq_connect")
    KW_SYM(send, "zmq_send")
    KW_SYM(msg_init, "zmq_msg_init")
    KW_SYM(msg_init_data, "zmq_msg_init_data")
    KW_SYM(msg_send, "zmq_msg_send")
    KW_SYM(msg_recv, "zmq_msg_recv")
    KW_SYM(msg_close, "zmq_msg_close")
    KW_SYM(msg_more, "zmq_msg_more")
    KW_SYM(msg_size, "zmq_msg_size")
#undef KW_SYM
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* big frames are sent without a copy, as pyzmq does with copy=False; the
 * payload lives until exit, so there is nothing to free */
static void keep(void *data, void *hint) {
    (void)data;
    (void)hint;
}

typedef struct {
    int n;
    size_t sizes[KW_MAX_FRAMES];
    char *data[KW_MAX_FRAMES];
} frames;

static int make_frames(frames *f, int argc, char **argv) {
    f->n = argc;
    if (f->n < 1 || f->n > KW_MAX_FRAMES) return 1;
    for (int i = 0; i < f->n; i++) {
        f->sizes[i] = (size_t)strtoull(argv[i], NULL, 10);
        f->data[i] = malloc(f->sizes[i] ? f->sizes[i] : 1);
        if (!f->data[i]) return 1;
        memset(f->data[i], 'x', f->sizes[i]);
    }
    return 0;
}

/* send one multipart message; prefix (a ROUTER identity) goes first if set */
static int send_frames(void *s, const frames *f, kw_msg *prefix) {
    if (prefix && zmq.msg_send(prefix, s, KW_SNDMORE) < 0) return -1;
    for (int i = 0; i < f->n; i++) {
        int flags = i + 1 < f->n ? KW_SNDMORE : 0;
        if (f->sizes[i] >= KW_COPY_THRESHOLD) {
            kw_msg m;
            if (zmq.msg_init_data(&m, f->data[i], f->sizes[i], keep, NULL) != 0) return -1;
            if (zmq.msg_send(&m, s, flags) < 0) return -1;
        } else if (zmq.send(s, f->data[i], f->sizes[i], flags) < 0) {
            return -1;
        }
    }
    return 0;
}

/* receive one multipart message and drop it; identity (ROUTER) is kept open */
static int recv_frames(void *s, kw_msg *identity) {
    int more = 1, first = 1;
    while (more) {
        kw_msg m;
        zmq.msg_init(&m);
        if (zmq.msg_recv(&m, s, 0) < 0) return -1;
        more = zmq.msg_more(&m);
        if (first && identity) {
            *identity = m;
        } else {
            zmq.msg_close(&m);
        }
        first = 0;
    }
    return 0;
}

static int report_endpoint(void *s) {
    char endpoint[512];
    size_t len = sizeof endpoint;
    if (zmq.getsockopt(s, KW_LAST_ENDPOINT, endpoint, &len) != 0) return 1;
    printf("{\"endpoint\": \"%s\"}\n", endpoint);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s LIBZMQ check|pull|push|echo|ping [ENDPOINT COUNT SIZE...]\n",
                argv[0]);
        return 2;
    }
    if (load(argv[1])) return 1;
    const char *role = argv[2];
    if (strcmp(role, "check") == 0) {
        printf("{\"ok\": true}\n");
        return 0;
    }
    if (argc < 5) return 2;
    const char *endpoint = argv[3];
    long count = atol(argv[4]);
    frames f = {0};
    int sends = strcmp(role, "pull") != 0;
    if (sends && make_frames(&f, argc - 5, argv + 5)) {
        printf("{\"error\": \"bad frame sizes\"}\n");
        return 2;
    }
    int type = strcmp(role, "pull") == 0   ? KW_PULL
               : strcmp(role, "push") == 0 ? KW_PUSH
               : strcmp(role, "echo") == 0 ? KW_ROUTER
               : strcmp(role, "ping") == 0 ? KW_DEALER
                                           : -1;
    if (type < 0) return 2;

    void *ctx = zmq.ctx_new();
    void *s = zmq.socket(ctx, type);
    if (!s) return fail("socket");
    int binds = type == KW_PULL || type == KW_ROUTER;
    if (binds) {
        if (zmq.bind(s, endpoint) != 0) return fail("bind");
        if (report_endpoint(s)) return fail("getsockopt");
    } else if (zmq.connect(s, endpoint) != 0) {
        return fail("connect");
    }

    double t0 = now();
    for (long i = 0; i <= count; i++) {
        if (i == 1) t0 = now();
        if (type == KW_PULL) {
            if (recv_frames(s, NULL)) return fail("recv");
        } else if (type == KW_PUSH) {
            if (send_frames(s, &f, NULL)) return fail("send");
        } else if (type == KW_ROUTER) {
            kw_msg identity;
            if (recv_frames(s, &identity)) return fail("recv");
            if (send_frames(s, &f, &identity)) return fail("send");
        } else {
            if (send_frames(s, &f, NULL)) return fail("send");
            if (recv_frames(s, NULL)) return fail("recv");
        }
    }
    double seconds = now() - t0;
    /* closing waits for queued messages to leave (default linger) */
    zmq.close(s);
    zmq.ctx_term(ctx);
    printf("{\"seconds\": %.9f}\n", seconds);
    return 0;
}
