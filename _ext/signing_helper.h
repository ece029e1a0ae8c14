/* HMAC (RFC 2104) on OpenSSL 3's EVP digest API, in the libcrypto that
 * Python's own _hashlib module already loaded.
 *
 * Why not hashlib: hmac.HMAC.copy() plus update and hexdigest cost about
 * 3.4 us per small message here, against about 1 us for two keyed EVP
 * digest states copied per message (measured; see README, "Signing").
 * EVP_MAC_CTX_dup per message measured slower than both keyed states.
 *
 * A kw_signer is built once per key and never written again: a re-key
 * builds a new one. A message hashed partly without the GIL gets its own
 * EVP_MD_CTX, copied from the key's inner state, so threads can sign with
 * one signer at once; the caller may instead keep one state (kw_md_ctx_new)
 * for messages signed wholly under the GIL and restart it per message.
 *
 * The few EVP entry points are looked up at run time (dlsym) in the
 * library _hashlib links: nothing is linked at build time, no second
 * libcrypto is loaded, and OpenSSL's providers (FIPS included) decide which
 * digest runs. Where the lookup fails (OpenSSL 1.1, Windows, a Python
 * without OpenSSL) the caller signs with hashlib's objects instead.
 */
#ifndef KERNELWIRE_SIGNING_HELPER_H
#define KERNELWIRE_SIGNING_HELPER_H

#include <stddef.h>
#include <string.h>

#if !defined(_WIN32)
#include <dlfcn.h>
#define KW_EVP_POSSIBLE 1
#else
#define KW_EVP_POSSIBLE 0
#endif

/* A Signer may keep one reusable state for messages it signs without ever
 * releasing the GIL; a free-threaded build has no GIL to guard it. */
#ifdef Py_GIL_DISABLED
#define KW_GIL_GUARDS_SCRATCH 0
#else
#define KW_GIL_GUARDS_SCRATCH 1
#endif

#define KW_MAX_BLOCK 144 /* the largest block of a hashlib digest (sha3_224) */
#define KW_MAX_DIGEST 64

typedef struct kw_evp_md kw_evp_md;   /* EVP_MD, opaque */
typedef struct kw_md_ctx kw_md_ctx;   /* EVP_MD_CTX, opaque */

static struct {
    int loaded;
    kw_evp_md *(*md_fetch)(void *libctx, const char *name, const char *properties);
    void (*md_free)(kw_evp_md *md);
    int (*md_get_size)(const kw_evp_md *md);
    int (*md_get_block_size)(const kw_evp_md *md);
    kw_md_ctx *(*ctx_new)(void);
    void (*ctx_free)(kw_md_ctx *ctx);
    int (*ctx_copy)(kw_md_ctx *out, const kw_md_ctx *in);
    int (*init)(kw_md_ctx *ctx, const kw_evp_md *md, void *engine);
    int (*update)(kw_md_ctx *ctx, const void *data, size_t n);
    int (*final)(kw_md_ctx *ctx, unsigned char *digest, unsigned int *n);
} kw_evp;

/* Look the EVP functions up in the library the module file `library`
 * links. Returns 1 when all were found (once per process). */
static int kw_evp_load(const char *library)
{
#if KW_EVP_POSSIBLE
    void *handle = NULL;
    if (kw_evp.loaded) {
        return kw_evp.loaded > 0;
    }
    if (library != NULL) {
        handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    }
    if (handle == NULL) {
        handle = dlopen(NULL, RTLD_NOW); /* _hashlib built into the interpreter */
    }
    kw_evp.loaded = -1;
    if (handle == NULL) {
        return 0;
    }
    /* the handle stays open: the library was loaded already and stays */
    *(void **)&kw_evp.md_fetch = dlsym(handle, "EVP_MD_fetch");
    *(void **)&kw_evp.md_free = dlsym(handle, "EVP_MD_free");
    *(void **)&kw_evp.md_get_size = dlsym(handle, "EVP_MD_get_size");
    *(void **)&kw_evp.md_get_block_size = dlsym(handle, "EVP_MD_get_block_size");
    *(void **)&kw_evp.ctx_new = dlsym(handle, "EVP_MD_CTX_new");
    *(void **)&kw_evp.ctx_free = dlsym(handle, "EVP_MD_CTX_free");
    *(void **)&kw_evp.ctx_copy = dlsym(handle, "EVP_MD_CTX_copy_ex");
    *(void **)&kw_evp.init = dlsym(handle, "EVP_DigestInit_ex");
    *(void **)&kw_evp.update = dlsym(handle, "EVP_DigestUpdate");
    *(void **)&kw_evp.final = dlsym(handle, "EVP_DigestFinal_ex");
    if (kw_evp.md_fetch && kw_evp.md_free && kw_evp.md_get_size && kw_evp.md_get_block_size
        && kw_evp.ctx_new && kw_evp.ctx_free && kw_evp.ctx_copy && kw_evp.init
        && kw_evp.update && kw_evp.final) {
        kw_evp.loaded = 1;
    }
    return kw_evp.loaded > 0;
#else
    (void)library;
    return 0;
#endif
}

/* The keyed states of one HMAC key; read-only once kw_signer_init succeeded. */
typedef struct {
    kw_evp_md *md;
    kw_md_ctx *inner; /* after hashing key ^ ipad */
    kw_md_ctx *outer; /* after hashing key ^ opad */
    size_t digest_size;
} kw_signer;

static void kw_signer_free(kw_signer *s)
{
    if (s->inner != NULL) kw_evp.ctx_free(s->inner);
    if (s->outer != NULL) kw_evp.ctx_free(s->outer);
    if (s->md != NULL) kw_evp.md_free(s->md);
    memset(s, 0, sizeof *s);
}

static int kw_keyed_state(kw_signer *s, kw_md_ctx **state, const unsigned char *block,
                          size_t block_size, unsigned char pad_byte)
{
    unsigned char pad[KW_MAX_BLOCK];
    size_t i;
    int ok;
    for (i = 0; i < block_size; i++) {
        pad[i] = (unsigned char)(block[i] ^ pad_byte);
    }
    *state = kw_evp.ctx_new();
    ok = *state != NULL && kw_evp.init(*state, s->md, NULL) && kw_evp.update(*state, pad, block_size);
    memset(pad, 0, sizeof pad);
    return ok;
}

/* Key a signer for the digest `name` (OpenSSL's or hashlib's spelling).
 * Returns 1 on success; on failure the signer is left empty. */
static int kw_signer_init(kw_signer *s, const char *name, const unsigned char *key, size_t key_len)
{
    unsigned char block[KW_MAX_BLOCK];
    size_t block_size;
    unsigned int n = 0;
    int ok = 0;
    memset(s, 0, sizeof *s);
    if (kw_evp.loaded <= 0 || (s->md = kw_evp.md_fetch(NULL, name, NULL)) == NULL) {
        return 0;
    }
    block_size = (size_t)kw_evp.md_get_block_size(s->md);
    s->digest_size = (size_t)kw_evp.md_get_size(s->md);
    if (block_size == 0 || block_size > KW_MAX_BLOCK || s->digest_size == 0
        || s->digest_size > KW_MAX_DIGEST || s->digest_size > block_size) {
        kw_signer_free(s);
        return 0;
    }
    memset(block, 0, sizeof block);
    if (key_len > block_size) { /* RFC 2104: a long key is hashed first */
        kw_md_ctx *c = kw_evp.ctx_new();
        ok = c != NULL && kw_evp.init(c, s->md, NULL) && kw_evp.update(c, key, key_len)
             && kw_evp.final(c, block, &n);
        if (c != NULL) kw_evp.ctx_free(c);
        if (!ok) {
            kw_signer_free(s);
            return 0;
        }
    } else if (key_len > 0) {
        memcpy(block, key, key_len);
    }
    ok = kw_keyed_state(s, &s->inner, block, block_size, 0x36)
         && kw_keyed_state(s, &s->outer, block, block_size, 0x5c);
    memset(block, 0, sizeof block);
    if (!ok) {
        kw_signer_free(s);
    }
    return ok;
}

/* A fresh state for one message, copied from the key's inner state. NULL on failure. */
static kw_md_ctx *kw_sign_begin(const kw_signer *s)
{
    kw_md_ctx *c = kw_evp.ctx_new();
    if (c != NULL && !kw_evp.ctx_copy(c, s->inner)) {
        kw_evp.ctx_free(c);
        c = NULL;
    }
    return c;
}

/* Restart `c` (made once by kw_md_ctx_new) at the key's inner state. 1 on success. */
static int kw_sign_restart(const kw_signer *s, kw_md_ctx *c)
{
    return kw_evp.ctx_copy(c, s->inner);
}

static kw_md_ctx *kw_md_ctx_new(void)
{
    return kw_evp.ctx_new();
}

static void kw_md_ctx_free(kw_md_ctx *c)
{
    if (c != NULL) kw_evp.ctx_free(c);
}

/* Absorb message bytes. Touches only `c` and `data`: safe without the GIL. */
static int kw_sign_absorb(kw_md_ctx *c, const void *data, size_t n)
{
    return kw_evp.update(c, data, n);
}

/* Finish the HMAC into `digest` (digest_size bytes), leaving `c` for reuse. 1 on success. */
static int kw_sign_finish(const kw_signer *s, kw_md_ctx *c, unsigned char *digest)
{
    unsigned char inner[KW_MAX_DIGEST];
    unsigned int n = 0;
    return kw_evp.final(c, inner, &n) && kw_evp.ctx_copy(c, s->outer)
           && kw_evp.update(c, inner, s->digest_size) && kw_evp.final(c, digest, &n);
}

/* Finish the HMAC into `digest` (digest_size bytes) and free `c`. Returns 1 on success. */
static int kw_sign_end(const kw_signer *s, kw_md_ctx *c, unsigned char *digest)
{
    int ok = kw_sign_finish(s, c, digest);
    kw_evp.ctx_free(c);
    return ok;
}

/* Lower-case hex of n bytes into out (2n characters, no terminator). */
static void kw_hexlify(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

#endif
