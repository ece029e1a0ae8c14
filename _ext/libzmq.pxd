# The libzmq entry points kernelwire._zmqio calls, as looked up at run time
# by zmqio_helper.h in pyzmq's own libzmq (no zmq.h needed).  Integer
# constants (flags, errnos) come from the zmq Python module at import.

cdef extern from "zmqio_helper.h":
    ctypedef union kw_msg_t:
        pass

    ctypedef void kw_free_fn(void *data, void *hint) noexcept nogil

    ctypedef struct kw_zmq_api:
        int (*msg_init)(kw_msg_t *msg) nogil
        int (*msg_init_size)(kw_msg_t *msg, size_t size) nogil
        int (*msg_init_data)(kw_msg_t *msg, void *data, size_t size,
                             kw_free_fn *ffn, void *hint) nogil
        int (*msg_send)(kw_msg_t *msg, void *socket, int flags) nogil
        int (*msg_recv)(kw_msg_t *msg, void *socket, int flags) nogil
        int (*msg_close)(kw_msg_t *msg) nogil
        void *(*msg_data)(kw_msg_t *msg) nogil
        size_t (*msg_size)(const kw_msg_t *msg) nogil
        int (*msg_more)(const kw_msg_t *msg) nogil
        int (*errno_)() nogil

    kw_zmq_api kw_zmq
    const char *kw_zmq_load(const char *path)

    ctypedef struct kw_track_state:
        pass

    ctypedef struct kw_node:
        pass

    void kw_free_callback(void *data, void *hint) noexcept nogil
    Py_ssize_t kw_drain()
    void kw_drain_if_needed()
    void kw_shutdown()
    kw_node *kw_node_new(Py_buffer *view, kw_track_state *track)
    kw_track_state *kw_track_new()
    bint kw_track_done(kw_track_state *track)
    void kw_track_decref(kw_track_state *track)
    long long kw_nodes_created
    long long kw_nodes_released
