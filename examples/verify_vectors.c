/*
 * verify_vectors: check the Jupyter wire-protocol test vectors with OpenSSL.
 *
 * A receiver written from docs/wire-protocol.md alone: it finds the
 * delimiter, runs the receiver's checks in the documented order and
 * computes the HMAC with libcrypto.  For each vector in
 * tests/vectors/vectors.txt it prints one line, comparing its verdict, its
 * own HMAC and whether it would record the signature against the expected
 * ones.  Exit status: 0 all agree, 1 some disagree, 2 unreadable input.
 *
 * Build: cc -std=c99 -Wall -Wextra -O2 -o verify_vectors verify_vectors.c -lcrypto
 * Run:   ./verify_vectors tests/vectors/vectors.txt
 *
 * Needs OpenSSL 3 (Debian/Ubuntu: libssl-dev).
 */
#define _POSIX_C_SOURCE 200809L /* getline, strdup */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define DELIMITER "<IDS|MSG>"
#define MIN_FRAMES 5 /* signature, header, parent_header, metadata, content */
#define SIGNED_FRAMES 4 /* header, parent_header, metadata, content */
#define HEX_MAX (2 * EVP_MAX_MD_SIZE + 1)

typedef struct {
    unsigned char *data;
    size_t len;
} bytes_t;

typedef struct {
    bytes_t *items;
    size_t count, cap;
} bytes_list_t;

/* One vector: the receiver's configuration, the frames it gets, the expectations. */
typedef struct {
    char *name;
    char *scheme;        /* "hmac-<hashlib name>" */
    bytes_t key;         /* empty: signing disabled */
    bytes_list_t seen;   /* signatures already in the receiver's replay history */
    bytes_list_t frames; /* the multipart message exactly as received */
    char *signature;     /* expected hex digest; NULL when there is no signature frame */
    char *verdict;
    int records;         /* the receiver adds the signature to its history */
} vector_t;

typedef struct {
    const char *verdict;
    int records;
    int has_signature; /* a signature frame exists, so `computed` is meaningful */
    char computed[HEX_MAX];
} result_t;

/* ---------------------------------------------------------------- helpers */

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex_decode(const char *hex, bytes_t *out)
{
    size_t n = strlen(hex), i;
    if (n % 2) return -1;
    out->len = n / 2;
    out->data = malloc(out->len ? out->len : 1);
    if (!out->data) return -1;
    for (i = 0; i < out->len; i++) {
        int hi = hex_value((unsigned char)hex[2 * i]);
        int lo = hex_value((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out->data[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int list_push(bytes_list_t *list, bytes_t item)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 8;
        bytes_t *items = realloc(list->items, cap * sizeof *items);
        if (!items) return -1;
        list->items = items;
        list->cap = cap;
    }
    list->items[list->count++] = item;
    return 0;
}

static void list_free(bytes_list_t *list)
{
    size_t i;
    for (i = 0; i < list->count; i++) free(list->items[i].data);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static void vector_free(vector_t *v)
{
    free(v->name);
    free(v->scheme);
    free(v->key.data);
    free(v->signature);
    free(v->verdict);
    list_free(&v->seen);
    list_free(&v->frames);
    memset(v, 0, sizeof *v);
}

static int bytes_equal_str(const bytes_t *b, const char *s)
{
    size_t n = strlen(s);
    return b->len == n && (n == 0 || memcmp(b->data, s, n) == 0);
}

static int bytes_equal(const bytes_t *a, const bytes_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ------------------------------------------------------------------- HMAC */

/* OpenSSL's name for the digest Python's hashlib calls `name`. */
static const char *openssl_digest(const char *name)
{
    static const char *const table[][2] = {
        {"md5", "MD5"},           {"sha1", "SHA1"},         {"sha224", "SHA2-224"},
        {"sha256", "SHA2-256"},   {"sha384", "SHA2-384"},   {"sha512", "SHA2-512"},
        {"sha3_224", "SHA3-224"}, {"sha3_256", "SHA3-256"}, {"sha3_384", "SHA3-384"},
        {"sha3_512", "SHA3-512"}, {"blake2b", "BLAKE2B-512"}, {"blake2s", "BLAKE2S-256"},
    };
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i][0]) == 0) return table[i][1];
    return NULL;
}

/*
 * Lowercase hex HMAC of `parts` concatenated, nothing between them, into
 * `hex` (HEX_MAX bytes).  Returns 0, or -1 with a message on stderr.
 */
static int hmac_hex(const char *scheme, const bytes_t *key, const bytes_t *parts, size_t nparts,
                    char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0, i;
    const char *digest;
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    int ok = 0;

    if (strncmp(scheme, "hmac-", 5) != 0 || !(digest = openssl_digest(scheme + 5))) {
        fprintf(stderr, "unsupported signature scheme %s\n", scheme);
        return -1;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) && (ctx = EVP_MAC_CTX_new(hmac))
        && EVP_MAC_init(ctx, key->data, key->len, params)) {
        ok = 1;
        for (i = 0; ok && i < nparts; i++)
            if (parts[i].len) ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len);
        ok = ok && EVP_MAC_final(ctx, mac, &mac_len, sizeof mac);
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    if (!ok) {
        fprintf(stderr, "OpenSSL cannot compute HMAC-%s\n", digest);
        return -1;
    }
    for (i = 0; i < mac_len; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[2 * mac_len] = '\0';
    return 0;
}

/* --------------------------------------------------------------- receiver */

/*
 * The receiver's checks, in jupyter_client's order.  Fills `r`; returns -1
 * only when the HMAC cannot be computed at all.
 */
static int judge(const vector_t *v, result_t *r)
{
    const bytes_t *frames = v->frames.items, *msg, *signature;
    size_t n = v->frames.count, d, m, nsigned, i;

    memset(r, 0, sizeof *r);
    /* Identities run up to the first delimiter frame. */
    for (d = 0; d < n && !bytes_equal_str(&frames[d], DELIMITER); d++) continue;
    if (d == n) {
        r->verdict = "malformed";
        return 0;
    }
    msg = frames + d + 1; /* signature, header, parent_header, metadata, content, buffers */
    m = n - d - 1;
    if (m == 0) { /* never index a frame that is not there */
        r->verdict = "malformed";
        return 0;
    }
    signature = &msg[0];
    /* What the signature should be: the HMAC of up to four frames after it. */
    r->has_signature = 1;
    nsigned = m - 1 < SIGNED_FRAMES ? m - 1 : SIGNED_FRAMES;
    if (v->key.len > 0) {
        if (hmac_hex(v->scheme, &v->key, msg + 1, nsigned, r->computed) < 0) return -1;
        if (signature->len == 0) {
            r->verdict = "unsigned";
            return 0;
        }
        for (i = 0; i < v->seen.count; i++) {
            if (bytes_equal(signature, &v->seen.items[i])) {
                r->verdict = "duplicate";
                return 0;
            }
        }
        r->records = 1; /* recorded before the comparison: a replayed forgery is a duplicate */
        /* Length first, then a comparison whose time does not depend on the content. */
        if (signature->len != strlen(r->computed)
            || CRYPTO_memcmp(signature->data, r->computed, signature->len) != 0) {
            r->verdict = "invalid_signature";
            return 0;
        }
    }
    /* Buffers (frames after the content) are allowed and are not signed. */
    r->verdict = m < MIN_FRAMES ? "malformed" : "valid";
    return 0;
}

/* Prints the vector's line; returns 1 if everything matches, 0 if not, -1 on error. */
static int check(const vector_t *v)
{
    result_t r;
    int agree = 1;

    if (judge(v, &r) < 0) return -1;
    if (strcmp(r.verdict, v->verdict) != 0) agree = 0;
    if (r.records != v->records) agree = 0;
    if (r.has_signature != (v->signature != NULL)) agree = 0;
    if (r.has_signature && v->signature && strcmp(r.computed, v->signature) != 0) agree = 0;
    if (agree) {
        printf("ok    %-44s %s\n", v->name, r.verdict);
    } else {
        printf("FAIL  %-44s verdict %s (expected %s), records %d (expected %d), "
               "hmac %s (expected %s)\n",
               v->name, r.verdict, v->verdict, r.records, v->records,
               r.has_signature ? r.computed : "-", v->signature ? v->signature : "-");
    }
    return agree;
}

/* ------------------------------------------------------------------ input */

static int parse_error(const char *path, size_t line, const char *what)
{
    fprintf(stderr, "%s:%zu: %s\n", path, line, what);
    return 2;
}

int main(int argc, char **argv)
{
    FILE *in;
    char *line = NULL;
    size_t cap = 0, lineno = 0, total = 0, failed = 0;
    ssize_t len;
    vector_t v;
    int in_vector = 0, status = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS.txt\n", argv[0]);
        return 2;
    }
    if (!(in = fopen(argv[1], "r"))) {
        perror(argv[1]);
        return 2;
    }
    memset(&v, 0, sizeof v);
    while (status == 0 && (len = getline(&line, &cap, in)) >= 0) {
        char *value;
        bytes_t b = {NULL, 0};
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        value = strchr(line, ' ');
        if (value) *value++ = '\0';
        else value = line + len; /* keyword alone: empty value */

        if (strcmp(line, "vector") == 0) {
            if (in_vector) status = parse_error(argv[1], lineno, "vector without end");
            in_vector = 1;
            v.name = strdup(value);
        } else if (!in_vector) {
            status = parse_error(argv[1], lineno, "line outside a vector");
        } else if (strcmp(line, "scheme") == 0) {
            v.scheme = strdup(value);
        } else if (strcmp(line, "key") == 0) {
            if (hex_decode(value, &v.key) < 0) status = parse_error(argv[1], lineno, "bad hex");
        } else if (strcmp(line, "seen") == 0 || strcmp(line, "frame") == 0) {
            if (hex_decode(value, &b) < 0
                || list_push(line[0] == 's' ? &v.seen : &v.frames, b) < 0) {
                free(b.data);
                status = parse_error(argv[1], lineno, "bad hex");
            }
        } else if (strcmp(line, "signature") == 0) {
            v.signature = strdup(value);
        } else if (strcmp(line, "verdict") == 0) {
            v.verdict = strdup(value);
        } else if (strcmp(line, "records") == 0) {
            v.records = atoi(value);
        } else if (strcmp(line, "end") == 0) {
            int agree;
            if (!v.name || !v.scheme || !v.verdict) {
                status = parse_error(argv[1], lineno, "incomplete vector");
                break;
            }
            agree = check(&v);
            if (agree < 0) status = 2;
            total++;
            failed += agree == 0;
            vector_free(&v);
            in_vector = 0;
        } else {
            status = parse_error(argv[1], lineno, "unknown keyword");
        }
    }
    if (status == 0 && in_vector) status = parse_error(argv[1], lineno, "last vector without end");
    vector_free(&v);
    free(line);
    fclose(in);
    if (status) return status;
    printf("%zu vectors, %zu disagree\n", total, failed);
    return total == 0 || failed ? 1 : 0;
}
