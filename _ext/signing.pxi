# Signing for the compiled core: one immutable Signer per key.
#
# A Signer is built when the Session's auth changes and never written
# afterwards; SessionCore swaps in a new one (an assignment under the GIL).
# Signing takes its own reference to the Signer first, so a re-key on
# another thread while a large frame is hashed without the GIL cannot mix
# two keys.  Included by _ccore.pyx; the pure twin is SessionCore.sign in
# _pycore.py, which is also this file's path for any auth the compiled
# HMAC does not reproduce exactly.

cdef extern from "signing_helper.h":
    ctypedef struct kw_md_ctx:
        pass
    ctypedef struct kw_signer:
        size_t digest_size
    int kw_evp_load(const char *library)
    int kw_signer_init(kw_signer *s, const char *name, const unsigned char *key, size_t key_len)
    void kw_signer_free(kw_signer *s)
    kw_md_ctx *kw_sign_begin(const kw_signer *s)
    int kw_sign_absorb(kw_md_ctx *c, const void *data, size_t n) nogil
    int kw_sign_end(const kw_signer *s, kw_md_ctx *c, unsigned char *digest)
    void kw_hexlify(const unsigned char *data, size_t n, char *out)
    bint KW_GIL_GUARDS_SCRATCH
    kw_md_ctx *kw_md_ctx_new()
    void kw_md_ctx_free(kw_md_ctx *c)
    int kw_sign_restart(const kw_signer *s, kw_md_ctx *c)
    int kw_sign_finish(const kw_signer *s, kw_md_ctx *c, unsigned char *digest)

cdef object _HMAC = _hmac_module.HMAC
# frames this large are hashed without the GIL
cdef Py_ssize_t _NOGIL_HASH_BYTES = 1 << 16
cdef bytes _PROBE = b"kernelwire: does the compiled HMAC agree with the Session's auth?"


cdef bint _load_evp():
    try:
        import _hashlib
        library = getattr(_hashlib, "__file__", None)
    except ImportError:  # a Python without OpenSSL: hashlib's objects only
        return False
    cdef bytes path = library.encode() if library else None
    return kw_evp_load(<const char *>path if path is not None else NULL) == 1


cdef bint _EVP = _load_evp()


@cython.final
cdef class Signer:
    """The HMAC of one key and digest: hex signatures of lists of frames.

    ``compiled`` is True when it signs on OpenSSL's EVP digests directly
    (checked against ``auth`` on a probe before use); otherwise it signs
    with copies of ``auth``, as jupyter_client does.
    """

    cdef readonly object auth
    cdef readonly bint compiled
    cdef kw_signer keyed
    # reused by messages signed entirely under the GIL (no frame reaches
    # _NOGIL_HASH_BYTES): saves a state allocation per small message
    cdef kw_md_ctx *scratch

    cdef bint keyed_once

    def __cinit__(self):
        self.compiled = False  # nothing for __dealloc__ to free until keyed

    def __init__(self, auth, key=None, digest_mod=None):
        if self.keyed_once:
            raise TypeError("a Signer is keyed once: make a new one for another key")
        self.keyed_once = True
        self.auth = auth
        if _EVP and type(auth) is _HMAC and type(key) is bytes and digest_mod is not None:
            self.compiled = self._key_compiled_hmac(<bytes>key, digest_mod)

    def __dealloc__(self):
        kw_md_ctx_free(self.scratch)
        if self.compiled:
            kw_signer_free(&self.keyed)

    cdef bint _key_compiled_hmac(self, bytes key, digest_mod) except -1:
        cdef unsigned char digest[64]
        try:
            name = digest_mod().name
        except Exception:
            return False
        if not isinstance(name, str):
            return False
        if not kw_signer_init(&self.keyed, name.encode(), key, len(key)):
            return False
        self.compiled = True  # from here __dealloc__ frees the keyed states
        expected = self.auth.copy()
        expected.update(_PROBE)
        if self._digest([_PROBE], digest) and expected.digest() == digest[:self.keyed.digest_size]:
            if KW_GIL_GUARDS_SCRATCH:
                self.scratch = kw_md_ctx_new()  # NULL: every message takes a fresh state
            return True
        kw_signer_free(&self.keyed)
        return False

    cdef bint _digest(self, parts, unsigned char *digest) except -1:
        """The raw HMAC of exact-bytes frames into ``digest``; False (nothing done) otherwise."""
        cdef kw_md_ctx *ctx
        cdef const char *data
        cdef Py_ssize_t size
        cdef bint ok = True
        cdef tuple frames
        cdef bint small = True
        if not PyList_CheckExact(parts):
            return False
        for p in <list>parts:
            if not PyBytes_CheckExact(p):
                return False
            if PyBytes_GET_SIZE(p) >= _NOGIL_HASH_BYTES:
                small = False
        if small and self.scratch != NULL:
            # The GIL is held from here to the end and nothing below runs Python
            # code, so no other thread can touch the list or the scratch state.
            if not kw_sign_restart(&self.keyed, self.scratch):
                raise RuntimeError("HMAC computation failed")
            for p in <list>parts:
                ok = kw_sign_absorb(self.scratch, PyBytes_AS_STRING(p),
                                    <size_t>PyBytes_GET_SIZE(p)) and ok
            if not kw_sign_finish(&self.keyed, self.scratch, digest) or not ok:
                raise RuntimeError("HMAC computation failed")
            return True
        # a snapshot: another thread may rewrite the list while a frame is
        # hashed without the GIL, never the tuple or the bytes it holds
        frames = tuple(<list>parts)
        for p in frames:
            if not PyBytes_CheckExact(p):
                return False
        ctx = kw_sign_begin(&self.keyed)
        if ctx == NULL:
            raise MemoryError()
        for p in frames:
            data = PyBytes_AS_STRING(p)
            size = PyBytes_GET_SIZE(p)
            if size >= _NOGIL_HASH_BYTES:
                with nogil:
                    ok = kw_sign_absorb(ctx, data, <size_t>size) and ok
            else:
                ok = kw_sign_absorb(ctx, data, <size_t>size) and ok
        if not kw_sign_end(&self.keyed, ctx, digest) or not ok:
            raise RuntimeError("HMAC computation failed")
        return True

    cpdef bytes hexdigest(self, parts):
        """The hex HMAC of ``parts`` as bytes, what jupyter_client's Session.sign returns."""
        cdef unsigned char digest[64]
        cdef Py_ssize_t n
        cdef bytes out
        if self.compiled and self._digest(parts, digest):
            n = <Py_ssize_t>self.keyed.digest_size
            out = PyBytes_FromStringAndSize(NULL, 2 * n)
            kw_hexlify(digest, n, PyBytes_AS_STRING(out))
            return out
        h = self.auth.copy()
        for m in parts:
            h.update(m)
        return h.hexdigest().encode()
