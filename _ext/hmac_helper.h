/* HMAC (RFC 2104) over the hash functions of the libcrypto that Python's
 * own _hashlib module already loaded.
 *
 * Why: hmac.HMAC.copy() plus update/hexdigest costs a microsecond or more per
 * message in allocations and EVP dispatch. Keeping the two keyed hash states
 * (key ^ ipad, key ^ opad) and copying them per message is all HMAC needs.
 * The hash functions are looked up at run time (dlsym) in the library
 * _hashlib links, so nothing is linked at build time and no second crypto
 * library is loaded. Where that is impossible (Windows, a Python without
 * OpenSSL) the lookup fails and the caller uses hashlib's objects instead.
 */
#ifndef KERNELWIRE_HMAC_HELPER_H
#define KERNELWIRE_HMAC_HELPER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#define KW_HASH_STATE_SIZE 512 /* larger than any of OpenSSL's *_CTX used here */
#define KW_MAX_BLOCK 128
#define KW_MAX_DIGEST 64

typedef union {
    unsigned char bytes[KW_HASH_STATE_SIZE];
    uint64_t align_u64;
    double align_double;
} kw_hash_state;

typedef int (*kw_init_fn)(void *state);
typedef int (*kw_update_fn)(void *state, const void *data, size_t len);
typedef int (*kw_final_fn)(unsigned char *digest, void *state);

typedef struct {
    kw_init_fn init;
    kw_update_fn update;
    kw_final_fn final;
    size_t block_size;
    size_t digest_size;
    kw_hash_state inner; /* state after hashing key ^ ipad */
    kw_hash_state outer; /* state after hashing key ^ opad */
} kw_hmac;

/* Find the hash `name` (hashlib's spelling) in the library that the module
 * file `library` links. Returns 1 and fills h's functions, or 0. */
static int kw_hmac_lookup(kw_hmac *h, const char *name, const char *library)
{
#if defined(_WIN32)
    (void)h; (void)name; (void)library;
    return 0;
#else
    static const struct {
        const char *name, *init, *update, *final;
        size_t block, digest;
    } known[] = {
        {"sha256", "SHA256_Init", "SHA256_Update", "SHA256_Final", 64, 32},
        {"sha224", "SHA224_Init", "SHA224_Update", "SHA224_Final", 64, 28},
        {"sha512", "SHA512_Init", "SHA512_Update", "SHA512_Final", 128, 64},
        {"sha384", "SHA384_Init", "SHA384_Update", "SHA384_Final", 128, 48},
        {"sha1", "SHA1_Init", "SHA1_Update", "SHA1_Final", 64, 20},
        {"md5", "MD5_Init", "MD5_Update", "MD5_Final", 64, 16},
    };
    size_t i;
    void *handle = NULL;
    if (library != NULL) {
        handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    }
    if (handle == NULL) {
        handle = dlopen(NULL, RTLD_NOW); /* _hashlib linked into the interpreter */
    }
    if (handle == NULL) {
        return 0;
    }
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(known[i].name, name) != 0) {
            continue;
        }
        h->init = (kw_init_fn)dlsym(handle, known[i].init);
        h->update = (kw_update_fn)dlsym(handle, known[i].update);
        h->final = (kw_final_fn)dlsym(handle, known[i].final);
        h->block_size = known[i].block;
        h->digest_size = known[i].digest;
        /* the handle stays open: the library was loaded already and stays */
        return h->init != NULL && h->update != NULL && h->final != NULL;
    }
    return 0;
#endif
}

/* Key the two states. Returns 1 on success. */
static int kw_hmac_set_key(kw_hmac *h, const unsigned char *key, size_t key_len)
{
    unsigned char block[KW_MAX_BLOCK];
    unsigned char pad[KW_MAX_BLOCK];
    size_t i;
    memset(block, 0, sizeof block);
    if (key_len > h->block_size) {
        kw_hash_state s;
        if (!h->init(&s) || !h->update(&s, key, key_len) || !h->final(block, &s)) {
            return 0;
        }
    } else if (key_len > 0) {
        memcpy(block, key, key_len);
    }
    for (i = 0; i < h->block_size; i++) {
        pad[i] = (unsigned char)(block[i] ^ 0x36);
    }
    if (!h->init(&h->inner) || !h->update(&h->inner, pad, h->block_size)) {
        return 0;
    }
    for (i = 0; i < h->block_size; i++) {
        pad[i] = (unsigned char)(block[i] ^ 0x5c);
    }
    if (!h->init(&h->outer) || !h->update(&h->outer, pad, h->block_size)) {
        return 0;
    }
    memset(block, 0, sizeof block);
    memset(pad, 0, sizeof pad);
    return 1;
}

/* Absorb message bytes into a state copied from h->inner. */
static int kw_hmac_update_state(const kw_hmac *h, kw_hash_state *s, const void *data, size_t n)
{
    return h->update(s, data, n);
}

/* Finish an HMAC whose inner state `s` has absorbed the message. */
static int kw_hmac_finish(const kw_hmac *h, kw_hash_state *s, unsigned char *digest)
{
    unsigned char inner_digest[KW_MAX_DIGEST];
    if (!h->final(inner_digest, s)) {
        return 0;
    }
    memcpy(s, &h->outer, sizeof *s);
    return h->update(s, inner_digest, h->digest_size) && h->final(digest, s);
}

#endif
