/* Raw libzmq access and zero-copy buffer release for kernelwire._zmqio.
 *
 * No zmq.h: the few libzmq entry points we call are looked up at run time
 * in the libzmq pyzmq already loaded (dlopen of pyzmq's extension with
 * RTLD_NOLOAD, then dlsym, which also searches that library's
 * dependencies).  Never a second libzmq.
 *
 * Zero-copy sends hand libzmq a Py_buffer wrapped in a kw_node.  libzmq
 * calls kw_free_callback on one of its IO threads, without the GIL, when it
 * is done with the bytes.  The callback touches no Python object: it pushes
 * the node on a lock-free stack and asks the interpreter (Py_AddPendingCall,
 * which needs no GIL) to drain it.  kw_drain, always run with the GIL,
 * releases each Py_buffer exactly once.
 */
#ifndef KERNELWIRE_ZMQIO_HELPER_H
#define KERNELWIRE_ZMQIO_HELPER_H

#include <Python.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32)
#include <dlfcn.h>
#include <sched.h>
#define KW_RAW_POSSIBLE 1
#else
#define KW_RAW_POSSIBLE 0
#endif

/* libzmq's zmq_msg_t: 64 opaque bytes, 8-aligned (stable ABI since 4.x). */
typedef union {
    unsigned char bytes[64];
    void *align_pointer;
    double align_double;
    long long align_long;
} kw_msg_t;

typedef void(kw_free_fn)(void *data, void *hint);

typedef struct {
    int (*msg_init)(kw_msg_t *msg);
    int (*msg_init_size)(kw_msg_t *msg, size_t size);
    int (*msg_init_data)(kw_msg_t *msg, void *data, size_t size, kw_free_fn *ffn, void *hint);
    int (*msg_send)(kw_msg_t *msg, void *socket, int flags);
    int (*msg_recv)(kw_msg_t *msg, void *socket, int flags);
    int (*msg_close)(kw_msg_t *msg);
    void *(*msg_data)(kw_msg_t *msg);
    size_t (*msg_size)(const kw_msg_t *msg);
    int (*msg_more)(const kw_msg_t *msg);
    int (*errno_)(void);
} kw_zmq_api;

static kw_zmq_api kw_zmq;

/* Fill kw_zmq from the library that holds pyzmq's extension `path`.
 * Returns NULL on success, else a static message saying what failed. */
static const char *kw_zmq_load(const char *path)
{
#if KW_RAW_POSSIBLE
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    kw_zmq_api api;
    if (lib == NULL) {
        return "pyzmq's extension is not loaded (dlopen RTLD_NOLOAD failed)";
    }
#define KW_LOOKUP(field, name)                                   \
    *(void **)(&api.field) = dlsym(lib, name);                   \
    if (api.field == NULL) {                                     \
        return "libzmq symbol " name " not found";               \
    }
    KW_LOOKUP(msg_init, "zmq_msg_init")
    KW_LOOKUP(msg_init_size, "zmq_msg_init_size")
    KW_LOOKUP(msg_init_data, "zmq_msg_init_data")
    KW_LOOKUP(msg_send, "zmq_msg_send")
    KW_LOOKUP(msg_recv, "zmq_msg_recv")
    KW_LOOKUP(msg_close, "zmq_msg_close")
    KW_LOOKUP(msg_data, "zmq_msg_data")
    KW_LOOKUP(msg_size, "zmq_msg_size")
    KW_LOOKUP(msg_more, "zmq_msg_more")
    KW_LOOKUP(errno_, "zmq_errno")
#undef KW_LOOKUP
    /* the handle stays open on purpose: the library is pyzmq's, loaded for
     * the life of the process */
    kw_zmq = api;
    return NULL;
#else
    (void)path;
    return "no dlopen on this platform";
#endif
}

/* ---- zero-copy buffer lifetime ------------------------------------------ */

/* What a tracker (zmq.MessageTracker subclass) watches. */
typedef struct {
    long pending; /* zero-copy frames libzmq still holds (atomic) */
    long refs;    /* owners: the Python tracker and each live node (GIL) */
} kw_track_state;

typedef struct kw_node {
    struct kw_node *next;
    Py_buffer view;          /* holds the reference to the exporter */
    kw_track_state *track;   /* NULL when untracked */
} kw_node;

#if KW_RAW_POSSIBLE
#define KW_ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define KW_ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define KW_ATOMIC_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define KW_XCHG_NODE(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define KW_XCHG_INT(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define KW_ATOMIC_CAS(p, expected, v) \
    __atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#else
/* Without the raw path libzmq never calls kw_free_callback and nothing here
 * runs concurrently: plain, correctly typed stand-ins keep it compiling. */
#define KW_ATOMIC_LOAD(p) (*(p))
#define KW_ATOMIC_STORE(p, v) (*(p) = (v))
#define KW_ATOMIC_ADD(p, v) (*(p) += (v))
#define KW_XCHG_NODE(p, v) kw_plain_xchg_node((p), (v))
#define KW_XCHG_INT(p, v) kw_plain_xchg_int((p), (v))
static kw_node *kw_plain_xchg_node(kw_node **p, kw_node *v) { kw_node *old = *p; *p = v; return old; }
static int kw_plain_xchg_int(int *p, int v) { int old = *p; *p = v; return old; }
#define KW_ATOMIC_CAS(p, expected, v) (*(p) = (v), 1)
#endif

static kw_node *kw_released;      /* stack of nodes libzmq let go of */
static int kw_drain_scheduled;    /* a pending call is queued */
static int kw_shutting_down;      /* interpreter exit: no more pending calls */
static int kw_callbacks_running;  /* callbacks between their first and last step */
static long long kw_nodes_created;  /* statistics (GIL) */
static long long kw_nodes_released; /* statistics (GIL) */

/* Drop the Python side of every node libzmq released.  GIL held. */
static Py_ssize_t kw_drain(void)
{
    kw_node *node = KW_XCHG_NODE(&kw_released, (kw_node *)NULL);
    Py_ssize_t n = 0;
    while (node != NULL) {
        kw_node *next = node->next;
        /* may run arbitrary code (a __del__): the list is already ours */
        PyBuffer_Release(&node->view);
        if (node->track != NULL && --node->track->refs == 0) {
            free(node->track);
        }
        free(node);
        node = next;
        n++;
    }
    kw_nodes_released += n;
    return n;
}

/* The cheap check every send/recv makes before draining. */
static void kw_drain_if_needed(void)
{
    if (KW_ATOMIC_LOAD(&kw_released) != NULL) {
        kw_drain();
    }
}

static int kw_drain_pending(void *unused)
{
    (void)unused;
    KW_ATOMIC_STORE(&kw_drain_scheduled, 0);
    kw_drain();
    return 0;
}

/* libzmq's free function: any thread, no GIL.  Touches no Python object. */
static void kw_free_callback(void *data, void *hint)
{
    kw_node *node = (kw_node *)hint;
    kw_node *head;
    (void)data;
    KW_ATOMIC_ADD(&kw_callbacks_running, 1);
    if (node->track != NULL) {
        KW_ATOMIC_ADD(&node->track->pending, -1);
    }
    head = KW_ATOMIC_LOAD(&kw_released);
    do {
        node->next = head;
    } while (!KW_ATOMIC_CAS(&kw_released, &head, node));
    if (!KW_ATOMIC_LOAD(&kw_shutting_down) && !KW_XCHG_INT(&kw_drain_scheduled, 1)) {
        if (Py_AddPendingCall(kw_drain_pending, NULL) != 0) {
            KW_ATOMIC_STORE(&kw_drain_scheduled, 0); /* the next send/recv drains */
        }
    }
    KW_ATOMIC_ADD(&kw_callbacks_running, -1);
}

/* At interpreter exit (atexit, interpreter still whole): stop scheduling
 * pending calls, wait out callbacks already scheduling one, drain.  Frames
 * libzmq releases after this keep their buffers: leaked, never touched. */
static void kw_shutdown(void)
{
    KW_ATOMIC_STORE(&kw_shutting_down, 1);
    while (KW_ATOMIC_LOAD(&kw_callbacks_running) != 0) {
#if KW_RAW_POSSIBLE
        sched_yield();
#endif
    }
    kw_drain();
}

/* A node for one zero-copy frame; takes over *view (its obj is cleared,
 * so releasing *view afterwards is a no-op).  GIL held. */
static kw_node *kw_node_new(Py_buffer *view, kw_track_state *track)
{
    kw_node *node = (kw_node *)malloc(sizeof(kw_node));
    if (node == NULL) {
        return NULL;
    }
    node->next = NULL;
    node->view = *view;
    view->obj = NULL;
    node->track = track;
    if (track != NULL) {
        track->refs++;
        KW_ATOMIC_ADD(&track->pending, 1);
    }
    kw_nodes_created++;
    return node;
}

static kw_track_state *kw_track_new(void)
{
    kw_track_state *track = (kw_track_state *)malloc(sizeof(kw_track_state));
    if (track != NULL) {
        track->pending = 0;
        track->refs = 1;
    }
    return track;
}

static int kw_track_done(kw_track_state *track)
{
    return KW_ATOMIC_LOAD(&track->pending) == 0;
}

static void kw_track_decref(kw_track_state *track)
{
    if (--track->refs == 0) {
        free(track);
    }
}

#endif /* KERNELWIRE_ZMQIO_HELPER_H */
