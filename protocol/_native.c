/* The sequencer's native hot path: keccak-256 and sender recovery for a whole batch of
 * transactions in one call that releases the GIL once.
 *
 * Why C: recovering a sender costs ~40 us in libsecp256k1 and ~1 us of keccak, and both
 * already run in C. What Python cost was the GIL: a cffi call per transaction released it and
 * then waited to take it back behind the event loop (about 60% of a decode thread's wall time
 * under load). Here a batch of N transactions is one release: the decode threads recover truly
 * in parallel and the event loop keeps the GIL meanwhile.
 *
 * libsecp256k1 is not linked: the caller passes the addresses of coincurve's own functions and
 * context (configure()), so this module needs only a C compiler and the Python headers, and uses
 * exactly the library the rest of the node uses.
 *
 * decode_common() also parses and checks the common shape of transaction (short items, an empty
 * access list, not a withdrawal) without the GIL, which takes the decoder's Python checks (~6 us
 * a transaction, all of it holding the GIL) off the event loop's way. It only ever *accepts*:
 * whatever it does not fully accept is handed back as None and the Python decoder (_tx.py), the
 * one authority on refusals and their reasons, decides. The property tests hold the two to the
 * same answer on every input the C path accepts.
 *
 * hash_level() and account_leaves() do the keccak work of a block's state commit (_commitment.py:
 * one leaf and ~16 / 4 inner nodes per touched account) a level at a time, the GIL released
 * while a large level hashes. The tree's rules stay in _commitment.py; only hashing is here.
 * leaf_hashes() hashes a batch's leaves (_batch_input.leaf_hash) for its input root, which
 * derivation checks for every batch it reads.
 *
 * apply_plain() (a block's plain transfers, _execution.py's rules 1-5) and the sequencer pool's
 * common cases (add_pending, settle_included, select_pending: services/sequencer/_mempool.py) take
 * per-transaction interpreted Python off the event loop, a few us a transaction each. Like
 * decode_common they do only the common case and stop, changing nothing, at anything else, which
 * the Python code (the one authority) then takes; tests hold each to the Python answer and state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* An int as n big-endian unsigned bytes (OverflowError if negative or wider). CPython 3.13 added a
 * with_exceptions argument to the private function; 3.11 and 3.12 take five. */
#if PY_VERSION_HEX >= 0x030D0000
#define INT_TO_BYTES(v, bytes, n) _PyLong_AsByteArray((PyLongObject *)(v), (bytes), (n), 0, 0, 1)
#else
#define INT_TO_BYTES(v, bytes, n) _PyLong_AsByteArray((PyLongObject *)(v), (bytes), (n), 0, 0)
#endif

/* ---- keccak-256 (the original Keccak padding, as Ethereum uses; not SHA3-256) ---------- */

#define KECCAK_RATE 136 /* bytes: 1600 - 2 * 256 bits */

static const uint64_t ROUND_CONSTANTS[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};
static inline uint64_t rotl(uint64_t x, unsigned n) { return (x << n) | (x >> ((64 - n) & 63)); }

/* keccak-f[1600], its 24 rounds each written out lane by lane (theta, rho and pi together, chi,
 * iota): about twice the speed of the loops over (x + 1) % 5 the specification reads as, and
 * keccak is 3 permutations of every transaction (its hash, its signing hash, its sender) and one
 * of every account a block touches. Lane i is s[x + 5y] with i = x + 5y. */
/* Built for x86-64 v3 too, picked at load time by the CPU (glibc's ifunc): BMI's andn and
 * rorx make chi and the rotations one instruction each (~15-20% a permutation here, measured). */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) && \
    ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
__attribute__((target_clones("default", "arch=x86-64-v3")))
#endif
static void keccak_f1600(uint64_t s[25]) {
    uint64_t c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
    uint64_t b[25];
    for (int round = 0; round < 24; round++) {
        /* theta */
        c0 = s[0] ^ s[5] ^ s[10] ^ s[15] ^ s[20];
        c1 = s[1] ^ s[6] ^ s[11] ^ s[16] ^ s[21];
        c2 = s[2] ^ s[7] ^ s[12] ^ s[17] ^ s[22];
        c3 = s[3] ^ s[8] ^ s[13] ^ s[18] ^ s[23];
        c4 = s[4] ^ s[9] ^ s[14] ^ s[19] ^ s[24];
        d0 = c4 ^ rotl(c1, 1);
        d1 = c0 ^ rotl(c2, 1);
        d2 = c1 ^ rotl(c3, 1);
        d3 = c2 ^ rotl(c4, 1);
        d4 = c3 ^ rotl(c0, 1);
        /* rho and pi: b[y + 5((2x + 3y) % 5)] = rotl(s[x + 5y] ^ d[x], r[x][y]) */
        b[0] = s[0] ^ d0;
        b[16] = rotl(s[5] ^ d0, 36);
        b[7] = rotl(s[10] ^ d0, 3);
        b[23] = rotl(s[15] ^ d0, 41);
        b[14] = rotl(s[20] ^ d0, 18);
        b[10] = rotl(s[1] ^ d1, 1);
        b[1] = rotl(s[6] ^ d1, 44);
        b[17] = rotl(s[11] ^ d1, 10);
        b[8] = rotl(s[16] ^ d1, 45);
        b[24] = rotl(s[21] ^ d1, 2);
        b[20] = rotl(s[2] ^ d2, 62);
        b[11] = rotl(s[7] ^ d2, 6);
        b[2] = rotl(s[12] ^ d2, 43);
        b[18] = rotl(s[17] ^ d2, 15);
        b[9] = rotl(s[22] ^ d2, 61);
        b[5] = rotl(s[3] ^ d3, 28);
        b[21] = rotl(s[8] ^ d3, 55);
        b[12] = rotl(s[13] ^ d3, 25);
        b[3] = rotl(s[18] ^ d3, 21);
        b[19] = rotl(s[23] ^ d3, 56);
        b[15] = rotl(s[4] ^ d4, 27);
        b[6] = rotl(s[9] ^ d4, 20);
        b[22] = rotl(s[14] ^ d4, 39);
        b[13] = rotl(s[19] ^ d4, 8);
        b[4] = rotl(s[24] ^ d4, 14);
        /* chi */
        for (int y = 0; y < 25; y += 5) {
            s[y + 0] = b[y + 0] ^ (~b[y + 1] & b[y + 2]);
            s[y + 1] = b[y + 1] ^ (~b[y + 2] & b[y + 3]);
            s[y + 2] = b[y + 2] ^ (~b[y + 3] & b[y + 4]);
            s[y + 3] = b[y + 3] ^ (~b[y + 4] & b[y + 0]);
            s[y + 4] = b[y + 4] ^ (~b[y + 0] & b[y + 1]);
        }
        /* iota */
        s[0] ^= ROUND_CONSTANTS[round];
    }
}

typedef struct {
    uint64_t state[25];
    uint8_t block[KECCAK_RATE];
    size_t used;
} Keccak;

static void keccak_init(Keccak *k) { memset(k, 0, sizeof *k); }

static void keccak_absorb_block(Keccak *k) {
    for (int i = 0; i < KECCAK_RATE / 8; i++) {
        uint64_t lane;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(&lane, k->block + 8 * i, 8); /* a lane is little-endian: one load, not eight shifts */
#else
        lane = 0;
        for (int b = 7; b >= 0; b--) lane = (lane << 8) | k->block[8 * i + b];
#endif
        k->state[i] ^= lane;
    }
    keccak_f1600(k->state);
    k->used = 0;
}

static void keccak_update(Keccak *k, const uint8_t *data, size_t length) {
    while (length > 0) {
        size_t take = KECCAK_RATE - k->used;
        if (take > length) take = length;
        memcpy(k->block + k->used, data, take);
        k->used += take;
        data += take;
        length -= take;
        if (k->used == KECCAK_RATE) keccak_absorb_block(k);
    }
}

static void keccak_final(Keccak *k, uint8_t out[32]) {
    memset(k->block + k->used, 0, KECCAK_RATE - k->used);
    k->block[k->used] ^= 0x01;
    k->block[KECCAK_RATE - 1] ^= 0x80;
    keccak_absorb_block(k);
    for (int i = 0; i < 32; i++) out[i] = (uint8_t)(k->state[i / 8] >> (8 * (i % 8)));
}

static void keccak256(const uint8_t *data, size_t length, uint8_t out[32]) {
    Keccak k;
    keccak_init(&k);
    keccak_update(&k, data, length);
    keccak_final(&k, out);
}

/* ---- libsecp256k1, through the caller's function pointers -------------------------------- */

typedef int (*ParseCompact)(const void *ctx, void *signature, const unsigned char *input64, int recid);
typedef int (*Recover)(const void *ctx, void *pubkey, const void *signature, const unsigned char *msghash32);
typedef int (*Serialize)(const void *ctx, unsigned char *output, size_t *outputlen, const void *pubkey,
                         unsigned int flags);

static struct {
    const void *ctx;
    ParseCompact parse_compact;
    Recover recover;
    Serialize serialize;
    unsigned int uncompressed;
} secp;

/* Opaque libsecp256k1 structs: 65 bytes (recoverable signature) and 64 (public key). Sized up
 * and aligned, as the library's own headers declare them. */
typedef union { unsigned char data[65]; uint64_t align; } Signature;
typedef union { unsigned char data[64]; uint64_t align; } PublicKey;

/* One canonical RLP integer of at most 32 bytes at raw[*pos], right-aligned into out[32]. */
static int rlp_word(const uint8_t *raw, size_t end, size_t *pos, uint8_t out[32]) {
    memset(out, 0, 32);
    if (*pos >= end) return 0;
    uint8_t head = raw[*pos];
    if (head < 0x80) { /* a single byte is its own encoding */
        out[31] = head;
        *pos += 1;
        return 1;
    }
    size_t length = head - 0x80;
    if (length > 32 || *pos + 1 + length > end) return 0;
    memcpy(out + 32 - length, raw + *pos + 1, length);
    *pos += 1 + length;
    return 1;
}

/* One job: a raw EIP-1559 transaction and where its RLP list's items start (body) and where
 * its unsigned fields end (unsigned_end: y_parity, r and s follow). */
typedef struct {
    const uint8_t *raw;
    size_t length, body, unsigned_end;
    uint8_t tx_hash[32];
    uint8_t sender[20];
    int recovered;
} Job;

static void recover_one(Job *job) {
    const uint8_t *raw = job->raw;
    keccak256(raw, job->length, job->tx_hash);
    job->recovered = 0;

    /* signing hash = keccak(0x02 || rlp list header || the unsigned fields' bytes) */
    size_t payload = job->unsigned_end - job->body;
    uint8_t prefix[1 + 1 + 8];
    size_t prefix_length = 0;
    prefix[prefix_length++] = 0x02;
    if (payload < 56) {
        prefix[prefix_length++] = (uint8_t)(0xC0 + payload);
    } else {
        uint8_t digits[8];
        size_t count = 0;
        for (size_t v = payload; v > 0; v >>= 8) digits[count++] = (uint8_t)(v & 0xFF);
        prefix[prefix_length++] = (uint8_t)(0xF7 + count);
        while (count > 0) prefix[prefix_length++] = digits[--count];
    }
    Keccak k;
    uint8_t signing_hash[32];
    keccak_init(&k);
    keccak_update(&k, prefix, prefix_length);
    keccak_update(&k, raw + job->body, payload);
    keccak_final(&k, signing_hash);

    /* y_parity, r, s: the list's last three items, already checked by the decoder */
    size_t pos = job->unsigned_end;
    uint8_t y[32], rs[64];
    if (!rlp_word(raw, job->length, &pos, y) || !rlp_word(raw, job->length, &pos, rs) ||
        !rlp_word(raw, job->length, &pos, rs + 32) || y[31] > 1)
        return;

    Signature signature;
    PublicKey public_key;
    unsigned char point[65];
    size_t point_length = sizeof point;
    if (!secp.parse_compact(secp.ctx, signature.data, rs, y[31])) return;
    if (!secp.recover(secp.ctx, public_key.data, signature.data, signing_hash)) return;
    if (!secp.serialize(secp.ctx, point, &point_length, public_key.data, secp.uncompressed) || point_length != 65)
        return;
    uint8_t digest[32];
    keccak256(point + 1, 64, digest); /* address = last 20 bytes of keccak(x || y) */
    memcpy(job->sender, digest + 12, 20);
    job->recovered = 1;
}

/* ---- the common shape: parse and check without the GIL ------------------------------------ */

/* The stateless rules the common path checks, from _rules.py (configure_rules(), at import). */
static struct {
    int set;
    uint8_t n[32], half_n[32]; /* secp256k1's order and half of it, big-endian */
    uint64_t max_nonce, block_gas_limit, base_gas, zero_byte_gas, nonzero_byte_gas;
    uint8_t message_passer[20];
} rules;

/* An RLP item's payload inside raw: a byte string, or an integer's minimal big-endian bytes. */
typedef struct { uint32_t offset, length; } Span;

enum { F_CHAIN, F_NONCE, F_TIP, F_FEE_CAP, F_GAS, F_TO, F_VALUE, F_DATA, F_ACCESS_LIST, F_Y, F_R, F_S, FIELDS };
enum { K_INT, K_STR, K_LIST };
static const int KINDS[FIELDS] = {K_INT, K_INT, K_INT, K_INT, K_INT, K_STR, K_INT, K_STR, K_LIST, K_INT, K_INT, K_INT};

/* Compare two minimal big-endian unsigned integers: <0, 0, >0. */
static int compare_be(const uint8_t *a, size_t a_length, const uint8_t *b, size_t b_length) {
    if (a_length != b_length) return a_length < b_length ? -1 : 1;
    return memcmp(a, b, a_length);
}

static uint64_t be_u64(const uint8_t *p, size_t length) { /* length <= 8 */
    uint64_t v = 0;
    for (size_t i = 0; i < length; i++) v = (v << 8) | p[i];
    return v;
}

/* A 32-byte big-endian constant without its leading zero bytes. */
static const uint8_t *minimal(const uint8_t word[32], size_t *length) {
    size_t skip = 0;
    while (skip < 32 && word[skip] == 0) skip++;
    *length = 32 - skip;
    return word + skip;
}

/* The twelve fields of a type-2 transaction of the common shape, or 0: the same shape
 * _tx._fields_fast reads (a list with a long-form length of 1 or 2 bytes, every item short,
 * canonical, the access list empty, nothing after the list). 0 says nothing about validity. */
static int parse_common(const uint8_t *raw, size_t size, Span fields[FIELDS], size_t *body, size_t *unsigned_end) {
    if (size < 4 || raw[0] != 0x02) return 0;
    size_t length;
    if (raw[1] == 0xF8) {
        *body = 3;
        length = raw[2];
        if (length < 56) return 0;
    } else if (raw[1] == 0xF9) {
        *body = 4;
        length = (size_t)raw[2] << 8 | raw[3];
        if (length < 256) return 0;
    } else {
        return 0;
    }
    if (*body + length != size) return 0;
    size_t p = *body;
    *unsigned_end = 0;
    for (int f = 0; f < FIELDS; f++) {
        if (p >= size) return 0;
        uint8_t b = raw[p];
        int kind = KINDS[f];
        if (b < 0x80) { /* a single byte, itself */
            if (kind == K_LIST || (kind == K_INT && b == 0)) return 0;
            fields[f] = (Span){(uint32_t)p, 1};
            p += 1;
        } else if (b < 0xB8 && kind != K_LIST) { /* a string of 0..55 bytes */
            size_t start = p + 1, n = b - 0x80;
            if (start + n > size) return 0;
            if (n == 1 && raw[start] < 0x80) return 0; /* must have been the byte itself */
            if (kind == K_INT && n > 0 && (raw[start] == 0 || n > 32)) return 0;
            fields[f] = (Span){(uint32_t)start, (uint32_t)n};
            p = start + n;
        } else if (b == 0xC0 && kind == K_LIST) {
            fields[f] = (Span){(uint32_t)p, 0};
            p += 1;
            *unsigned_end = p;
        } else {
            return 0;
        }
    }
    return p == size;
}

/* Every stateless rule _tx._check applies, for the common shape: 1 if all pass. */
static int passes_rules(const uint8_t *raw, const Span f[FIELDS], const uint8_t *chain_id, size_t chain_id_length) {
#define AT(field) (raw + f[field].offset)
#define LEN(field) ((size_t)f[field].length)
    if (compare_be(AT(F_CHAIN), LEN(F_CHAIN), chain_id, chain_id_length) != 0) return 0;
    if (LEN(F_NONCE) > 8 || be_u64(AT(F_NONCE), LEN(F_NONCE)) > rules.max_nonce) return 0;
    if (LEN(F_TO) != 20 || memcmp(AT(F_TO), rules.message_passer, 20) == 0) return 0; /* withdrawals: Python */
    if (compare_be(AT(F_TIP), LEN(F_TIP), AT(F_FEE_CAP), LEN(F_FEE_CAP)) > 0) return 0;
    if (LEN(F_GAS) > 8) return 0;
    uint64_t gas_limit = be_u64(AT(F_GAS), LEN(F_GAS));
    if (gas_limit > rules.block_gas_limit) return 0;
    uint64_t needed = rules.base_gas;
    for (size_t i = 0; i < LEN(F_DATA); i++) needed += AT(F_DATA)[i] ? rules.nonzero_byte_gas : rules.zero_byte_gas;
    if (gas_limit < needed) return 0;
    if (LEN(F_Y) > 1 || (LEN(F_Y) == 1 && AT(F_Y)[0] != 1)) return 0;
    size_t n_length, half_length;
    const uint8_t *n = minimal(rules.n, &n_length), *half_n = minimal(rules.half_n, &half_length);
    if (LEN(F_R) == 0 || compare_be(AT(F_R), LEN(F_R), n, n_length) >= 0) return 0;
    if (LEN(F_S) == 0 || compare_be(AT(F_S), LEN(F_S), half_n, half_length) > 0) return 0; /* low s (EIP-2) */
    return 1;
#undef AT
#undef LEN
}

/* One transaction of a decode_common() call. */
typedef struct {
    Span fields[FIELDS];
    Job job;
    int accepted;
} Common;

static void decode_one(Common *c, const uint8_t *chain_id, size_t chain_id_length, size_t max_size) {
    c->accepted = 0;
    size_t body, unsigned_end;
    if (c->job.length > max_size || !parse_common(c->job.raw, c->job.length, c->fields, &body, &unsigned_end) ||
        !passes_rules(c->job.raw, c->fields, chain_id, chain_id_length))
        return;
    c->job.body = body;
    c->job.unsigned_end = unsigned_end;
    recover_one(&c->job);
    c->accepted = c->job.recovered;
}

/* A field's Python integer (minimal big-endian bytes). */
static PyObject *integer(const uint8_t *raw, Span s) {
    if (s.length <= 8) return PyLong_FromUnsignedLongLong(be_u64(raw + s.offset, s.length));
    return _PyLong_FromByteArray(raw + s.offset, s.length, 0, 0);
}

/* The Transaction (a NamedTuple: tx_type) of an accepted one; its fields in _tx.Transaction's order. */
static PyObject *transaction(PyTypeObject *tx_type, const Common *c, PyObject *raw_object, PyObject *chain_id,
                             PyObject *empty_tuple) {
    const uint8_t *raw = c->job.raw;
    const Span *f = c->fields;
    PyObject *tx = tx_type->tp_alloc(tx_type, 15);
    if (tx == NULL) return NULL;
    PyObject *items[15] = {
        chain_id,
        integer(raw, f[F_NONCE]),
        integer(raw, f[F_TIP]),
        integer(raw, f[F_FEE_CAP]),
        integer(raw, f[F_GAS]),
        PyBytes_FromStringAndSize((const char *)raw + f[F_TO].offset, 20),
        integer(raw, f[F_VALUE]),
        PyBytes_FromStringAndSize((const char *)raw + f[F_DATA].offset, f[F_DATA].length),
        empty_tuple,
        integer(raw, f[F_Y]),
        integer(raw, f[F_R]),
        integer(raw, f[F_S]),
        PyBytes_FromStringAndSize((const char *)c->job.sender, 20),
        PyBytes_FromStringAndSize((const char *)c->job.tx_hash, 32),
        raw_object,
    };
    Py_INCREF(chain_id);
    Py_INCREF(empty_tuple);
    Py_INCREF(raw_object);
    int failed = 0;
    for (int i = 0; i < 15; i++) {
        if (items[i] == NULL) failed = 1;
        PyTuple_SET_ITEM(tx, i, items[i]); /* NULL slots are skipped by the tuple's dealloc */
    }
    if (failed) {
        Py_DECREF(tx);
        return NULL;
    }
    return tx;
}

/* ---- Merkle trees: the nodes and account leaves a block's commit rehashes ----------------- */

/* Each item of ``digests`` is a 32-byte Python bytes object: is it? */
static int is_word(PyObject *item) { return PyBytes_CheckExact(item) && PyBytes_GET_SIZE(item) == 32; }

/* Hash ``count`` inputs of ``width`` bytes each from ``inputs`` into ``outputs`` (32 bytes each),
 * without the GIL when there are enough to be worth handing it over. */
static void hash_all(const uint8_t *inputs, size_t width, Py_ssize_t count, uint8_t *outputs) {
    if (count < 64) {
        for (Py_ssize_t i = 0; i < count; i++) keccak256(inputs + (size_t)i * width, width, outputs + 32 * (size_t)i);
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) keccak256(inputs + (size_t)i * width, width, outputs + 32 * (size_t)i);
    Py_END_ALLOW_THREADS
}

static PyObject *native_hash_level(PyObject *self, PyObject *args) {
    PyObject *below, *above, *parents;
    int arity;
    if (!PyArg_ParseTuple(args, "O!O!O!i", &PyList_Type, &below, &PyList_Type, &above, &PyList_Type, &parents,
                          &arity))
        return NULL;
    if (arity < 1 || arity > 64) {
        PyErr_SetString(PyExc_ValueError, "hash_level: arity must be 1..64");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(parents), width = 32 * (Py_ssize_t)arity;
    Py_ssize_t *slots = PyMem_Malloc((n > 0 ? (size_t)n : 1) * sizeof(Py_ssize_t));
    uint8_t *inputs = PyMem_Malloc((n > 0 ? (size_t)n : 1) * (size_t)width);
    uint8_t *outputs = PyMem_Malloc((n > 0 ? (size_t)n : 1) * 32);
    PyObject *result = NULL;
    if (slots == NULL || inputs == NULL || outputs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(parents, i));
        if (p == -1 && PyErr_Occurred()) goto done;
        if (p < 0 || p >= PyList_GET_SIZE(above) || (p + 1) * arity > PyList_GET_SIZE(below)) {
            PyErr_Format(PyExc_IndexError, "hash_level: parent %zd outside the levels", p);
            goto done;
        }
        for (int c = 0; c < arity; c++) {
            PyObject *child = PyList_GET_ITEM(below, p * arity + c);
            if (!is_word(child)) {
                PyErr_SetString(PyExc_TypeError, "hash_level: every child is 32 bytes");
                goto done;
            }
            memcpy(inputs + (size_t)i * (size_t)width + 32 * (size_t)c, PyBytes_AS_STRING(child), 32);
        }
        slots[i] = p;
    }
    hash_all(inputs, (size_t)width, n, outputs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *digest = PyBytes_FromStringAndSize((const char *)outputs + 32 * (size_t)i, 32);
        if (digest == NULL || PyList_SetItem(above, slots[i], digest) < 0) goto done; /* SetItem steals */
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(slots);
    PyMem_Free(inputs);
    PyMem_Free(outputs);
    return result;
}

/* A batch's leaf hashes (_batch_input.leaf_hash: keccak256(leaf.encode())): a TX leaf, the
 * common leaf, is 0x00 || its raw bytes, hashed from the raw bytes in place; any other leaf is
 * encoded by its own encode() (the rule) and that hashed. The bytes are held by a reference each
 * while the hashing runs without the GIL. */
static PyObject *native_leaf_hashes(PyObject *self, PyObject *args) {
    PyObject *leaves, *tx_leaf_type;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &leaves, &PyType_Type, &tx_leaf_type)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(leaves);
    PyObject **held = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(PyObject *));
    uint8_t *prefixed = PyMem_Malloc(n > 0 ? (size_t)n : 1); /* 1: hash 0x00 first (a TX leaf's raw bytes) */
    uint8_t *outputs = PyMem_Malloc((n > 0 ? (size_t)n : 1) * 32);
    PyObject *result = NULL;
    Py_ssize_t filled = 0;
    if (held == NULL || prefixed == NULL || outputs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; filled < n; filled++) {
        if (PyList_GET_SIZE(leaves) != n) { /* an encode() changed the list */
            PyErr_SetString(PyExc_RuntimeError, "leaf_hashes: the list changed size");
            goto done;
        }
        PyObject *leaf = PyList_GET_ITEM(leaves, filled), *data;
        Py_INCREF(leaf);
        data = NULL;
        prefixed[filled] = 0;
        if (Py_TYPE(leaf) == (PyTypeObject *)tx_leaf_type) {
            data = PyObject_GetAttrString(leaf, "raw");
            if (data != NULL && !PyBytes_CheckExact(data)) Py_CLEAR(data); /* encode() decides */
            else prefixed[filled] = 1;
        }
        if (data == NULL && !PyErr_Occurred()) {
            PyObject *encoded = PyObject_CallMethod(leaf, "encode", NULL);
            /* keccak256 hashes any buffer: so do we, through a bytes copy of it */
            data = encoded == NULL || PyBytes_CheckExact(encoded) ? encoded : PyBytes_FromObject(encoded);
            if (encoded != data) Py_XDECREF(encoded);
        }
        Py_DECREF(leaf);
        if (data == NULL) goto done;
        held[filled] = data;
    }
    static const uint8_t tx_leaf = 0x00;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        Keccak k;
        keccak_init(&k);
        if (prefixed[i]) keccak_update(&k, &tx_leaf, 1);
        keccak_update(&k, (const uint8_t *)PyBytes_AS_STRING(held[i]), (size_t)PyBytes_GET_SIZE(held[i]));
        keccak_final(&k, outputs + 32 * (size_t)i);
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *digest = PyBytes_FromStringAndSize((const char *)outputs + 32 * (size_t)i, 32);
        if (digest == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, digest);
    }
done:
    if (held != NULL)
        for (Py_ssize_t i = 0; i < filled; i++) Py_XDECREF(held[i]);
    PyMem_Free(held);
    PyMem_Free(prefixed);
    PyMem_Free(outputs);
    return result;
}

/* Account leaves: H(address(20) || uint64 nonce || uint256 balance || next address(20)). */
#define LEAF_SIZE 80

static PyObject *native_account_leaves(PyObject *self, PyObject *args) {
    PyObject *addresses, *accounts, *next_of, *indices;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyList_Type, &addresses, &PyList_Type, &accounts, &PyList_Type, &next_of,
                          &PyList_Type, &indices))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(indices);
    uint8_t *inputs = PyMem_Malloc((n > 0 ? (size_t)n : 1) * LEAF_SIZE);
    uint8_t *outputs = PyMem_Malloc((n > 0 ? (size_t)n : 1) * 32);
    PyObject *result = NULL;
    if (inputs == NULL || outputs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(indices, k));
        if (i == -1 && PyErr_Occurred()) goto done;
        if (i < 0 || i >= PyList_GET_SIZE(addresses) || i >= PyList_GET_SIZE(accounts) ||
            i >= PyList_GET_SIZE(next_of)) {
            PyErr_Format(PyExc_IndexError, "account_leaves: slot %zd outside the lists", i);
            goto done;
        }
        PyObject *address = PyList_GET_ITEM(addresses, i), *next = PyList_GET_ITEM(next_of, i);
        PyObject *account = PyList_GET_ITEM(accounts, i);
        if (!PyBytes_CheckExact(address) || PyBytes_GET_SIZE(address) != 20 || !PyBytes_CheckExact(next) ||
            PyBytes_GET_SIZE(next) != 20 || !PyTuple_Check(account) || PyTuple_GET_SIZE(account) < 2 ||
            !PyLong_Check(PyTuple_GET_ITEM(account, 0)) || !PyLong_Check(PyTuple_GET_ITEM(account, 1))) {
            PyErr_SetString(PyExc_TypeError, "account_leaves: 20-byte addresses and (nonce, balance) accounts");
            goto done;
        }
        uint8_t *leaf = inputs + (size_t)k * LEAF_SIZE;
        memcpy(leaf, PyBytes_AS_STRING(address), 20);
        /* nonce: uint64, balance: uint256, both big-endian; a negative or wider value is an error */
        if (INT_TO_BYTES(PyTuple_GET_ITEM(account, 0), leaf + 20, 8) < 0 ||
            INT_TO_BYTES(PyTuple_GET_ITEM(account, 1), leaf + 28, 32) < 0)
            goto done;
        memcpy(leaf + 60, PyBytes_AS_STRING(next), 20);
    }
    hash_all(inputs, LEAF_SIZE, n, outputs);
    result = PyList_New(n);
    for (Py_ssize_t k = 0; result != NULL && k < n; k++) {
        PyObject *digest = PyBytes_FromStringAndSize((const char *)outputs + 32 * (size_t)k, 32);
        if (digest == NULL) Py_CLEAR(result);
        else PyList_SET_ITEM(result, k, digest);
    }
done:
    PyMem_Free(inputs);
    PyMem_Free(outputs);
    return result;
}

/* ---- Python interface ---------------------------------------------------------------------- */

static PyObject *native_configure(PyObject *self, PyObject *args) {
    unsigned long long ctx, parse_compact, recover, serialize;
    unsigned int uncompressed;
    if (!PyArg_ParseTuple(args, "KKKKI", &ctx, &parse_compact, &recover, &serialize, &uncompressed)) return NULL;
    if (!ctx || !parse_compact || !recover || !serialize) {
        PyErr_SetString(PyExc_ValueError, "configure: a null context or function address");
        return NULL;
    }
    secp.ctx = (const void *)(uintptr_t)ctx;
    secp.parse_compact = (ParseCompact)(uintptr_t)parse_compact;
    secp.recover = (Recover)(uintptr_t)recover;
    secp.serialize = (Serialize)(uintptr_t)serialize;
    secp.uncompressed = uncompressed;
    Py_RETURN_NONE;
}

static PyObject *native_keccak256(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    uint8_t out[32];
    keccak256(view.buf, (size_t)view.len, out);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *native_recover_senders(PyObject *self, PyObject *jobs_list) {
    if (!PyList_Check(jobs_list)) {
        PyErr_SetString(PyExc_TypeError, "recover_senders: a list of (raw, body, unsigned_end) tuples");
        return NULL;
    }
    if (secp.recover == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "recover_senders: configure() was not called");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(jobs_list);
    Job *jobs = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(Job));
    PyObject **raws = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(PyObject *));
    PyObject *result = NULL;
    Py_ssize_t held = 0;
    if (jobs == NULL || raws == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(jobs_list, i);
        PyObject *raw;
        Py_ssize_t body, unsigned_end;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "Snn", &raw, &body, &unsigned_end)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "recover_senders: jobs are (raw, body, unsigned_end)");
            goto done;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(raw);
        if (body < 0 || body > unsigned_end || unsigned_end > length) {
            PyErr_Format(PyExc_ValueError, "recover_senders: job %zd: offsets %zd..%zd outside %zd bytes", i, body,
                         unsigned_end, length);
            goto done;
        }
        /* held across the GIL release: the bytes must outlive any change to the list */
        Py_INCREF(raw);
        raws[held++] = raw;
        jobs[i].raw = (const uint8_t *)PyBytes_AS_STRING(raw);
        jobs[i].length = (size_t)length;
        jobs[i].body = (size_t)body;
        jobs[i].unsigned_end = (size_t)unsigned_end;
    }

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) recover_one(&jobs[i]);
    Py_END_ALLOW_THREADS

    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sender;
        if (jobs[i].recovered) {
            sender = PyBytes_FromStringAndSize((const char *)jobs[i].sender, 20);
        } else {
            sender = Py_None;
            Py_INCREF(sender);
        }
        PyObject *tx_hash = PyBytes_FromStringAndSize((const char *)jobs[i].tx_hash, 32);
        PyObject *pair = (sender && tx_hash) ? PyTuple_Pack(2, sender, tx_hash) : NULL;
        Py_XDECREF(sender);
        Py_XDECREF(tx_hash);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, pair);
    }

done:
    for (Py_ssize_t i = 0; i < held; i++) Py_DECREF(raws[i]);
    PyMem_Free(raws);
    PyMem_Free(jobs);
    return result;
}

static PyObject *native_configure_rules(PyObject *self, PyObject *args) {
    Py_buffer n, half_n, passer;
    unsigned long long max_nonce, block_gas_limit, base_gas, zero_byte_gas, nonzero_byte_gas;
    if (!PyArg_ParseTuple(args, "y*y*KKKKKy*", &n, &half_n, &max_nonce, &block_gas_limit, &base_gas, &zero_byte_gas,
                          &nonzero_byte_gas, &passer))
        return NULL;
    PyObject *result = NULL;
    if (n.len != 32 || half_n.len != 32 || passer.len != 20) {
        PyErr_SetString(PyExc_ValueError, "configure_rules: n and half_n are 32 bytes, the message passer 20");
    } else {
        memcpy(rules.n, n.buf, 32);
        memcpy(rules.half_n, half_n.buf, 32);
        memcpy(rules.message_passer, passer.buf, 20);
        rules.max_nonce = max_nonce;
        rules.block_gas_limit = block_gas_limit;
        rules.base_gas = base_gas;
        rules.zero_byte_gas = zero_byte_gas;
        rules.nonzero_byte_gas = nonzero_byte_gas;
        rules.set = 1;
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&n);
    PyBuffer_Release(&half_n);
    PyBuffer_Release(&passer);
    return result;
}

static PyObject *native_decode_common(PyObject *self, PyObject *args) {
    PyObject *raws, *chain_id;
    Py_ssize_t max_size;
    PyTypeObject *tx_type;
    if (!PyArg_ParseTuple(args, "O!O!nO!", &PyList_Type, &raws, &PyLong_Type, &chain_id, &max_size, &PyType_Type,
                          &tx_type))
        return NULL;
    if (!rules.set || secp.recover == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "decode_common: configure() and configure_rules() were not both called");
        return NULL;
    }
    if (!PyType_IsSubtype(tx_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "decode_common: tx_type must be a tuple subclass (Transaction)");
        return NULL;
    }
    /* The chain id as minimal big-endian bytes; one no transaction can carry accepts none. */
    uint8_t word[32];
    size_t chain_id_length = 0;
    const uint8_t *chain_id_bytes = word;
    int representable = INT_TO_BYTES(chain_id, word, 32) == 0; /* negative or wider: OverflowError */
    if (representable) {
        chain_id_bytes = minimal(word, &chain_id_length);
    } else {
        PyErr_Clear();
    }
    Py_ssize_t n = PyList_GET_SIZE(raws);
    Common *work = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(Common));
    PyObject **held = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(PyObject *));
    PyObject *result = NULL, *empty_tuple = NULL;
    if (work == NULL || held == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw = PyList_GET_ITEM(raws, i);
        /* held across the GIL release: the bytes must outlive any change to the list */
        Py_INCREF(raw);
        held[i] = raw;
        if (PyBytes_CheckExact(raw)) {
            work[i].job.raw = (const uint8_t *)PyBytes_AS_STRING(raw);
            work[i].job.length = (size_t)PyBytes_GET_SIZE(raw);
        } /* anything else: job.raw stays NULL, not accepted, Python decides */
    }

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        if (work[i].job.raw != NULL && representable)
            decode_one(&work[i], chain_id_bytes, chain_id_length, (size_t)max_size);
    Py_END_ALLOW_THREADS

    empty_tuple = PyTuple_New(0);
    result = empty_tuple ? PyList_New(n) : NULL;
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = Py_None;
        if (work[i].accepted) {
            item = transaction(tx_type, &work[i], held[i], chain_id, empty_tuple);
            if (item == NULL) {
                Py_CLEAR(result);
                goto done;
            }
        } else {
            Py_INCREF(item);
        }
        PyList_SET_ITEM(result, i, item);
    }

done:
    for (Py_ssize_t i = 0; i < n && held != NULL; i++) Py_XDECREF(held[i]);
    Py_XDECREF(empty_tuple);
    PyMem_Free(held);
    PyMem_Free(work);
    return result;
}

/* ---- Execution: the plain transfers of a block, rules 1-5 of protocol/_execution.py ----------- */

/* What apply_plain needs of _execution.py and _rules.py, handed over once by configure_execution. */
static struct {
    PyTypeObject *account_type, *result_type;
    PyObject *empty_account, *fee_vault, *zero_address, *message_passer, *base_gas, *uint256_max, *one, *zero;
} exe;

static PyObject *native_configure_execution(PyObject *self, PyObject *args) {
    PyTypeObject *account_type, *result_type;
    PyObject *empty_account, *fee_vault, *zero_address, *message_passer, *base_gas, *uint256_max;
    if (!PyArg_ParseTuple(args, "O!O!O!SSSO!O!", &PyType_Type, &account_type, &PyType_Type, &result_type,
                          &PyTuple_Type, &empty_account, &fee_vault, &zero_address, &message_passer, &PyLong_Type,
                          &base_gas, &PyLong_Type, &uint256_max))
        return NULL;
    if (!PyType_IsSubtype(account_type, &PyTuple_Type) || !PyType_IsSubtype(result_type, &PyTuple_Type) ||
        PyTuple_GET_SIZE(empty_account) != 2) {
        PyErr_SetString(PyExc_TypeError, "configure_execution: Account and TxResult are tuple types");
        return NULL;
    }
    PyObject *held[8] = {(PyObject *)account_type, (PyObject *)result_type, empty_account, fee_vault,
                         zero_address, message_passer, base_gas, uint256_max};
    for (int i = 0; i < 8; i++) Py_INCREF(held[i]);
    Py_XDECREF(exe.account_type);
    Py_XDECREF(exe.result_type);
    Py_XDECREF(exe.empty_account);
    Py_XDECREF(exe.fee_vault);
    Py_XDECREF(exe.zero_address);
    Py_XDECREF(exe.message_passer);
    Py_XDECREF(exe.base_gas);
    Py_XDECREF(exe.uint256_max);
    exe.account_type = account_type;
    exe.result_type = result_type;
    exe.empty_account = empty_account;
    exe.fee_vault = fee_vault;
    exe.zero_address = zero_address;
    exe.message_passer = message_passer;
    exe.base_gas = base_gas;
    exe.uint256_max = uint256_max;
    if (exe.one == NULL) exe.one = PyLong_FromLong(1);
    if (exe.zero == NULL) exe.zero = PyLong_FromLong(0);
    if (exe.one == NULL || exe.zero == NULL) return NULL;
    Py_RETURN_NONE;
}

/* A new tuple of ``type`` (a NamedTuple) holding ``items``, whose references it steals (NULL: failed). */
static PyObject *tuple_of(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
    int failed = 0;
    for (Py_ssize_t i = 0; i < n; i++) failed |= items[i] == NULL;
    PyObject *t = failed ? NULL : type->tp_alloc(type, n);
    if (t == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, items[i]);
    return t;
}

/* a < b for Python ints: 1, 0, or -1 (error). */
static int less(PyObject *a, PyObject *b) { return PyObject_RichCompareBool(a, b, Py_LT); }

/* accounts[address] = Account(nonce, balance); dirty[address] = None (State._write). Steals both. */
static int write_account(PyObject *accounts, PyObject *dirty, PyObject *address, PyObject *nonce, PyObject *balance) {
    PyObject *items[2] = {nonce, balance};
    PyObject *account = tuple_of(exe.account_type, items, 2);
    if (account == NULL) return -1;
    int failed = PyDict_SetItem(accounts, address, account) < 0 || PyDict_SetItem(dirty, address, Py_None) < 0;
    Py_DECREF(account);
    return failed ? -1 : 0;
}

/* State.credit: ``amount`` wei more at ``address``; 0 creates nothing; above 2**256 - 1 raises as it does. */
static int credit(PyObject *accounts, PyObject *dirty, PyObject *address, PyObject *amount) {
    int zero = PyObject_Not(amount);
    if (zero != 0) return zero < 0 ? -1 : 0;
    PyObject *account = PyDict_GetItemWithError(accounts, address); /* borrowed */
    if (account == NULL && PyErr_Occurred()) return -1;
    if (account == NULL) account = exe.empty_account;
    if (!PyTuple_Check(account) || PyTuple_GET_SIZE(account) != 2) {
        PyErr_SetString(PyExc_TypeError, "an account is a (nonce, balance) tuple");
        return -1;
    }
    PyObject *balance = PyNumber_Add(PyTuple_GET_ITEM(account, 1), amount);
    if (balance == NULL) return -1;
    int over = less(exe.uint256_max, balance);
    if (over != 0) {
        if (over > 0) PyErr_SetString(PyExc_OverflowError, "balance above 2**256 - 1");
        Py_DECREF(balance);
        return -1;
    }
    PyObject *nonce = PyTuple_GET_ITEM(account, 0);
    Py_INCREF(nonce);
    return write_account(accounts, dirty, address, nonce, balance);
}

/* One plain transfer (the list of stop conditions in apply_plain's docstring): 1 applied (its
   TxResult in *result), 0 not this one's case (nothing changed), -1 an error (raised). */
static int apply_one(PyObject *accounts, PyObject *dirty, PyObject *tx, PyObject *base_fee, PyObject *gas_limit,
                     PyObject *gas_used, PyObject **result) {
    if (!PyTuple_Check(tx) || PyTuple_GET_SIZE(tx) < 15) return 0;
    PyObject *nonce = PyTuple_GET_ITEM(tx, 1), *tip_cap = PyTuple_GET_ITEM(tx, 2),
             *fee_cap = PyTuple_GET_ITEM(tx, 3), *gas = PyTuple_GET_ITEM(tx, 4), *to = PyTuple_GET_ITEM(tx, 5),
             *value = PyTuple_GET_ITEM(tx, 6), *data = PyTuple_GET_ITEM(tx, 7),
             *access_list = PyTuple_GET_ITEM(tx, 8), *sender = PyTuple_GET_ITEM(tx, 12),
             *tx_hash = PyTuple_GET_ITEM(tx, 13);
    /* Plain: to an address other than MESSAGE_PASSER, no data, no access list (gas used TX_BASE_GAS). */
    if (!PyBytes_CheckExact(to) || PyBytes_GET_SIZE(to) == 0 || !PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) != 0 ||
        !PyTuple_CheckExact(access_list) || PyTuple_GET_SIZE(access_list) != 0 || !PyLong_CheckExact(nonce) ||
        !PyLong_CheckExact(tip_cap) || !PyLong_CheckExact(fee_cap) || !PyLong_CheckExact(gas) ||
        !PyLong_CheckExact(value) || !PyBytes_CheckExact(sender))
        return 0;
    int passer = PyObject_RichCompareBool(to, exe.message_passer, Py_EQ);
    if (passer != 0) return passer < 0 ? -1 : 0;
    /* Rules 1-5, each only to see whether it passes: the Python rules say why one does not. */
    int below = less(fee_cap, base_fee); /* 1 */
    if (below != 0) return below < 0 ? -1 : 0;
    PyObject *after = PyNumber_Add(gas_used, gas); /* 2 and 3 */
    if (after == NULL) return -1;
    int full = less(gas_limit, after);
    Py_DECREF(after);
    if (full != 0) return full < 0 ? -1 : 0;
    PyObject *account = PyDict_GetItemWithError(accounts, sender); /* borrowed */
    if (account == NULL && PyErr_Occurred()) return -1;
    if (account == NULL) account = exe.empty_account;
    if (!PyTuple_Check(account) || PyTuple_GET_SIZE(account) != 2) return 0;
    PyObject *account_nonce = PyTuple_GET_ITEM(account, 0), *balance = PyTuple_GET_ITEM(account, 1);
    int same = PyObject_RichCompareBool(nonce, account_nonce, Py_EQ); /* 4 */
    if (same != 1) return same < 0 ? -1 : 0;
    PyObject *most = PyNumber_Multiply(gas, fee_cap), *cost = most == NULL ? NULL : PyNumber_Add(most, value);
    Py_XDECREF(most);
    if (cost == NULL) return -1;
    int poor = less(balance, cost); /* 5 */
    Py_DECREF(cost);
    if (poor != 0) return poor < 0 ? -1 : 0;
    /* gas_and_price, then the writes in their order: sender, ``to``, FEE_VAULT. */
    PyObject *gas_used_tx = exe.base_gas;
    PyObject *room = PyNumber_Subtract(fee_cap, base_fee);
    if (room == NULL) return -1;
    int capped = less(room, tip_cap);
    if (capped < 0) {
        Py_DECREF(room);
        return -1;
    }
    PyObject *tip = capped ? room : tip_cap;
    Py_INCREF(tip);
    Py_DECREF(room);
    PyObject *price = PyNumber_Add(base_fee, tip);
    PyObject *fee = price == NULL ? NULL : PyNumber_Multiply(gas_used_tx, price);
    PyObject *spent = fee == NULL ? NULL : PyNumber_Add(fee, value);
    PyObject *left = spent == NULL ? NULL : PyNumber_Subtract(balance, spent);
    PyObject *next_nonce = left == NULL ? NULL : PyNumber_Add(account_nonce, exe.one);
    PyObject *tip_paid = next_nonce == NULL ? NULL : PyNumber_Multiply(tip, gas_used_tx);
    PyObject *burned = tip_paid == NULL ? NULL : PyNumber_Multiply(base_fee, gas_used_tx);
    Py_XDECREF(fee);
    Py_XDECREF(spent);
    Py_DECREF(tip);
    if (burned == NULL) {
        Py_XDECREF(price);
        Py_XDECREF(left);
        Py_XDECREF(next_nonce);
        Py_XDECREF(tip_paid);
        return -1;
    }
    if (write_account(accounts, dirty, sender, next_nonce, left) < 0 || credit(accounts, dirty, to, value) < 0 ||
        credit(accounts, dirty, exe.fee_vault, tip_paid) < 0) {
        Py_DECREF(price);
        Py_DECREF(tip_paid);
        Py_DECREF(burned);
        return -1;
    }
    Py_INCREF(tx_hash);
    Py_INCREF(sender);
    Py_INCREF(gas_used_tx);
    Py_INCREF(Py_None);
    PyObject *items[7] = {tx_hash, sender, gas_used_tx, price, burned, tip_paid, Py_None};
    *result = tuple_of(exe.result_type, items, 7);
    return *result == NULL ? -1 : 1;
}

static PyObject *native_apply_plain(PyObject *self, PyObject *args) {
    PyObject *accounts, *dirty, *txs, *base_fee, *gas_limit, *gas_used, *applied;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!O!O!nO!O!O!O!", &PyDict_Type, &accounts, &PyDict_Type, &dirty, &PyList_Type,
                          &txs, &start, &PyLong_Type, &base_fee, &PyLong_Type, &gas_limit, &PyLong_Type,
                          &gas_used, &PyList_Type, &applied))
        return NULL;
    if (exe.account_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "apply_plain: configure_execution() was not called");
        return NULL;
    }
    Py_INCREF(gas_used);
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < PyList_GET_SIZE(txs); i++) {
        PyObject *tx = PyList_GET_ITEM(txs, i), *result = NULL;
        Py_INCREF(tx);
        int done = apply_one(accounts, dirty, tx, base_fee, gas_limit, gas_used, &result);
        PyObject *pair = NULL, *total = NULL;
        if (done > 0) {
            total = PyNumber_Add(gas_used, PyTuple_GET_ITEM(result, 2));
            pair = total == NULL ? NULL : PyTuple_Pack(2, tx, result);
            Py_DECREF(result);
            if (pair == NULL || PyList_Append(applied, pair) < 0) done = -1;
            Py_XDECREF(pair);
        }
        Py_DECREF(tx);
        if (done > 0) {
            Py_DECREF(gas_used);
            gas_used = total;
            continue;
        }
        Py_XDECREF(total);
        if (done < 0) {
            Py_DECREF(gas_used);
            return NULL;
        }
        break;
    }
    PyObject *out = Py_BuildValue("(nN)", i, gas_used);
    return out;
}

/* ---- The sequencer's pool: the common add (services/sequencer/_mempool.py, Mempool.add_many) ---- */

/* A __slots__ attribute's offset in its instances, from the type's member descriptor (-1: none). */
static Py_ssize_t slot_offset(PyTypeObject *type, const char *name) {
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name); /* borrowed */
    if (descr == NULL || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ attribute", type->tp_name, name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
        return -1;
    }
    return member->offset;
}

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* The pool's classes and their slots' offsets, handed over once by configure_pool. */
static struct {
    PyTypeObject *sender_type, *entry_type, *result_type;
    PyObject *pending, *no_hashes;
    Py_ssize_t s_nonce, s_balance, s_txs, s_pending_end, s_pending_cost, s_queued_cost, s_top;
    Py_ssize_t e_tx, e_seq, e_arrived, e_cost;
} pool;

static PyObject *native_configure_pool(PyObject *self, PyObject *args) {
    PyTypeObject *sender_type, *entry_type, *result_type;
    PyObject *pending, *no_hashes;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!", &PyType_Type, &sender_type, &PyType_Type, &entry_type, &PyType_Type,
                          &result_type, &pending, &PyTuple_Type, &no_hashes))
        return NULL;
    if (!PyType_IsSubtype(result_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure_pool: AddResult is a tuple type");
        return NULL;
    }
    Py_ssize_t offsets[11] = {
        slot_offset(sender_type, "nonce"), slot_offset(sender_type, "balance"), slot_offset(sender_type, "txs"),
        slot_offset(sender_type, "pending_end"), slot_offset(sender_type, "pending_cost"),
        slot_offset(sender_type, "queued_cost"), slot_offset(sender_type, "top"), slot_offset(entry_type, "tx"),
        slot_offset(entry_type, "seq"), slot_offset(entry_type, "arrived"), slot_offset(entry_type, "cost"),
    };
    for (int i = 0; i < 11; i++)
        if (offsets[i] < 0) return NULL;
    if (sender_type->tp_basicsize < 8 * (Py_ssize_t)sizeof(PyObject *) || entry_type->tp_dictoffset != 0 ||
        sender_type->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "configure_pool: _Sender and _Entry are __slots__ classes");
        return NULL;
    }
    Py_INCREF(sender_type);
    Py_INCREF(entry_type);
    Py_INCREF(result_type);
    Py_INCREF(pending);
    Py_INCREF(no_hashes);
    pool.sender_type = sender_type;
    pool.entry_type = entry_type;
    pool.result_type = result_type;
    pool.pending = pending;
    pool.no_hashes = no_hashes;
    pool.s_nonce = offsets[0];
    pool.s_balance = offsets[1];
    pool.s_txs = offsets[2];
    pool.s_pending_end = offsets[3];
    pool.s_pending_cost = offsets[4];
    pool.s_queued_cost = offsets[5];
    pool.s_top = offsets[6];
    pool.e_tx = offsets[7];
    pool.e_seq = offsets[8];
    pool.e_arrived = offsets[9];
    pool.e_cost = offsets[10];
    Py_RETURN_NONE;
}

/* Replace an object slot's value (steals ``value``). */
static void set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value) {
    PyObject *old = SLOT(obj, offset);
    SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

/* A new instance of a __slots__ class with no __init__ run (every slot NULL until set). */
static PyObject *bare(PyTypeObject *type) { return type->tp_alloc(type, 0); }

/* The pool's int counters ``names`` (Mempool attributes) read into ``counters`` (new references): 0, or -1. */
static int read_counters(PyObject *mempool, const char *const *names, int n, PyObject **counters) {
    for (int k = 0; k < n; k++) {
        counters[k] = PyObject_GetAttrString(mempool, names[k]);
        if (counters[k] == NULL || !PyLong_CheckExact(counters[k])) {
            if (counters[k] != NULL) PyErr_Format(PyExc_TypeError, "Mempool.%s is not an int", names[k]);
            for (int j = 0; j <= k; j++) Py_XDECREF(counters[j]);
            return -1;
        }
    }
    return 0;
}

/* Write the counters back (releasing them), also when a step raised (what it did before stands):
   index ``i`` as a Python int, or NULL with the step's error (or the write's). */
static PyObject *write_counters(PyObject *mempool, const char *const *names, int n, PyObject **counters, int failed,
                                Py_ssize_t i) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    for (int k = 0; k < n; k++) {
        if (PyObject_SetAttrString(mempool, names[k], counters[k]) < 0) failed = 1;
        Py_DECREF(counters[k]);
    }
    if (type != NULL) PyErr_Restore(type, value, traceback);
    return failed ? NULL : PyLong_FromSsize_t(i);
}

/* The limits of add_pending's common case, as ints (from the pool's MempoolConfig). */
typedef struct {
    PyObject *min_tip, *block_gas_limit, *account_slots, *global_slots;
    Py_ssize_t max_tx_size;
} Limits;

/* One add of the common case: 1 added (its AddResult in *result), 0 not the common case (nothing
   changed), -1 an error. ``counters``: seq, pending_total, adds (new references, updated in place). */
static int add_one(PyObject *senders, PyObject *by_hash, PyObject *state_fn, const Limits *limits, PyObject *tx,
                   PyObject *now, PyObject *counters[3], PyObject **result) {
    if (!PyTuple_Check(tx) || PyTuple_GET_SIZE(tx) < 15) return 0;
    PyObject *nonce = PyTuple_GET_ITEM(tx, 1), *tip = PyTuple_GET_ITEM(tx, 2), *fee_cap = PyTuple_GET_ITEM(tx, 3),
             *gas = PyTuple_GET_ITEM(tx, 4), *value = PyTuple_GET_ITEM(tx, 6), *sender = PyTuple_GET_ITEM(tx, 12),
             *tx_hash = PyTuple_GET_ITEM(tx, 13), *raw = PyTuple_GET_ITEM(tx, 14);
    if (!PyBytes_CheckExact(raw) || !PyBytes_CheckExact(tx_hash) || !PyBytes_CheckExact(sender) ||
        !PyLong_CheckExact(nonce))
        return 0;
    int known = PyDict_Contains(by_hash, tx_hash);
    if (known != 0) return known < 0 ? -1 : 0;
    int low = less(tip, limits->min_tip);
    if (low != 0) return low < 0 ? -1 : 0;
    int big = less(limits->block_gas_limit, gas);
    if (big != 0) return big < 0 ? -1 : 0;
    if (PyBytes_GET_SIZE(raw) > limits->max_tx_size) return 0;
    PyObject *acct = PyDict_GetItemWithError(senders, sender); /* borrowed */
    if (acct == NULL && PyErr_Occurred()) return -1;
    int fresh = acct == NULL;
    if (fresh) {
        if (state_fn == Py_None) return 0; /* no lookup: Python's _load decides */
        PyObject *state = PyObject_CallOneArg(state_fn, sender);
        if (state == NULL) return -1;
        static PyObject *names[2] = {NULL, NULL};
        if (names[0] == NULL && (names[0] = PyUnicode_InternFromString("nonce")) == NULL) return -1;
        if (names[1] == NULL && (names[1] = PyUnicode_InternFromString("balance")) == NULL) return -1;
        PyObject *state_nonce = PyObject_GetAttr(state, names[0]);
        PyObject *state_balance = state_nonce == NULL ? NULL : PyObject_GetAttr(state, names[1]);
        Py_DECREF(state);
        PyObject *txs = state_balance == NULL ? NULL : PyDict_New();
        PyObject *top = txs == NULL ? NULL : PyNumber_Subtract(state_nonce, exe.one);
        acct = top == NULL ? NULL : bare(pool.sender_type);
        if (acct == NULL) {
            Py_XDECREF(state_nonce);
            Py_XDECREF(state_balance);
            Py_XDECREF(txs);
            Py_XDECREF(top);
            return -1;
        }
        /* _Sender.__init__'s values */
        Py_INCREF(state_nonce);
        SLOT(acct, pool.s_nonce) = state_nonce;
        SLOT(acct, pool.s_balance) = state_balance;
        SLOT(acct, pool.s_txs) = txs;
        SLOT(acct, pool.s_pending_end) = state_nonce;
        Py_INCREF(exe.zero);
        SLOT(acct, pool.s_pending_cost) = exe.zero;
        Py_INCREF(exe.zero);
        SLOT(acct, pool.s_queued_cost) = exe.zero;
        SLOT(acct, pool.s_top) = top;
    } else {
        Py_INCREF(acct);
    }
    int ok = 0;
    PyObject *cost = NULL, *after = NULL, *next = NULL, *txs = SLOT(acct, pool.s_txs);
    PyObject *acct_nonce = SLOT(acct, pool.s_nonce), *pending_end = SLOT(acct, pool.s_pending_end);
    if (txs == NULL || acct_nonce == NULL || pending_end == NULL || SLOT(acct, pool.s_pending_cost) == NULL ||
        SLOT(acct, pool.s_balance) == NULL || SLOT(acct, pool.s_top) == NULL || !PyDict_CheckExact(txs))
        goto out; /* not a record as _Sender makes them: Python's path */
    /* nonce == pending_end (so >= the account's nonce), no transaction at it, a free sender slot */
    if ((ok = PyObject_RichCompareBool(nonce, pending_end, Py_EQ)) != 1) goto out;
    if ((ok = PyDict_Contains(txs, nonce)) != 0) {
        ok = ok < 0 ? -1 : 0;
        goto out;
    }
    PyObject *used = PyNumber_Subtract(nonce, acct_nonce);
    if (used == NULL) {
        ok = -1;
        goto out;
    }
    ok = less(used, limits->account_slots);
    Py_DECREF(used);
    if (ok != 1) goto out;
    /* the pending run with it affordable; a free global slot; nothing queued after it (no promotion) */
    PyObject *most = PyNumber_Multiply(gas, fee_cap);
    cost = most == NULL ? NULL : PyNumber_Add(value, most);
    Py_XDECREF(most);
    after = cost == NULL ? NULL : PyNumber_Add(SLOT(acct, pool.s_pending_cost), cost);
    if (after == NULL) {
        ok = -1;
        goto out;
    }
    if ((ok = less(SLOT(acct, pool.s_balance), after)) != 0) {
        ok = ok < 0 ? -1 : 0;
        goto out;
    }
    if ((ok = less(counters[1], limits->global_slots)) != 1) goto out;
    if ((ok = less(nonce, SLOT(acct, pool.s_top))) != 0) {
        ok = ok < 0 ? -1 : 0;
        goto out;
    }
    /* Accepted: the writes of _add's pending branch, in its order. */
    next = PyNumber_Add(nonce, exe.one);
    PyObject *entry = next == NULL ? NULL : bare(pool.entry_type);
    PyObject *seq = entry == NULL ? NULL : PyNumber_Add(counters[0], exe.one);
    PyObject *total = seq == NULL ? NULL : PyNumber_Add(counters[1], exe.one);
    PyObject *adds = total == NULL ? NULL : PyNumber_Add(counters[2], exe.one);
    if (adds == NULL) {
        Py_XDECREF(entry);
        Py_XDECREF(seq);
        Py_XDECREF(total);
        ok = -1;
        goto out;
    }
    Py_INCREF(tx);
    SLOT(entry, pool.e_tx) = tx;
    SLOT(entry, pool.e_seq) = counters[0]; /* the reference moves to the entry */
    Py_INCREF(now);
    SLOT(entry, pool.e_arrived) = now;
    Py_INCREF(cost);
    SLOT(entry, pool.e_cost) = cost;
    counters[0] = seq;
    Py_DECREF(counters[1]);
    counters[1] = total;
    Py_DECREF(counters[2]);
    counters[2] = adds;
    ok = PyDict_SetItem(txs, nonce, entry) == 0 && PyDict_SetItem(by_hash, tx_hash, entry) == 0 &&
         (!fresh || PyDict_SetItem(senders, sender, acct) == 0);
    Py_DECREF(entry);
    if (!ok) {
        ok = -1;
        goto out;
    }
    set_slot(acct, pool.s_pending_end, next);
    next = NULL;
    set_slot(acct, pool.s_pending_cost, after);
    after = NULL;
    Py_INCREF(nonce);
    set_slot(acct, pool.s_top, nonce);
    Py_INCREF(tx_hash);
    Py_INCREF(pool.pending);
    Py_INCREF(Py_None);
    Py_INCREF(pool.no_hashes);
    PyObject *items[4] = {tx_hash, pool.pending, Py_None, pool.no_hashes};
    *result = tuple_of(pool.result_type, items, 4);
    ok = *result == NULL ? -1 : 1;
out:
    Py_XDECREF(cost);
    Py_XDECREF(after);
    Py_XDECREF(next);
    Py_DECREF(acct);
    return ok;
}

static PyObject *native_add_pending(PyObject *self, PyObject *args) {
    PyObject *mempool, *senders, *by_hash, *state_fn, *txs, *now, *out;
    Limits limits;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OO!O!OO!nOO!O!O!O!nO!", &mempool, &PyDict_Type, &senders, &PyDict_Type,
                          &by_hash, &state_fn, &PyList_Type, &txs, &start, &now, &PyList_Type, &out, &PyLong_Type,
                          &limits.min_tip, &PyLong_Type, &limits.block_gas_limit, &PyLong_Type,
                          &limits.account_slots, &limits.max_tx_size, &PyLong_Type, &limits.global_slots))
        return NULL;
    if (pool.sender_type == NULL || exe.one == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "add_pending: configure_pool() and configure_execution() first");
        return NULL;
    }
    /* The pool's counters, read once and written back once. */
    static const char *const names[3] = {"_seq", "_pending_total", "_adds"};
    PyObject *counters[3];
    if (read_counters(mempool, names, 3, counters) < 0) return NULL;
    Py_ssize_t i = start < 0 ? 0 : start;
    int failed = 0;
    for (; i < PyList_GET_SIZE(txs); i++) {
        PyObject *tx = PyList_GET_ITEM(txs, i), *result = NULL;
        Py_INCREF(tx);
        int done = add_one(senders, by_hash, state_fn, &limits, tx, now, counters, &result);
        Py_DECREF(tx);
        if (done > 0) {
            done = PyList_Append(out, result) < 0 ? -1 : 1;
            Py_DECREF(result);
        }
        if (done < 0) failed = 1;
        if (done <= 0) break;
    }
    return write_counters(mempool, names, 3, counters, failed, i);
}

/* One changed account of a sealed block, the common case of Mempool._reset: the block took the
   sender's whole pending run and the pool holds nothing else of it, so the record goes (_prune).
   1 done, 0 not this case (nothing changed), -1 an error. ``counters``: pending_total, included. */
static int settle_one(PyObject *senders, PyObject *by_hash, PyObject *starved, PyObject *sender, PyObject *state,
                      PyObject *floor, PyObject *included, PyObject *counters[2]) {
    PyObject *acct = PyDict_GetItemWithError(senders, sender); /* borrowed */
    if (acct == NULL) return PyErr_Occurred() ? -1 : 1;       /* nothing held: ignored (account_state is set) */
    PyObject *txs = SLOT(acct, pool.s_txs), *acct_nonce = SLOT(acct, pool.s_nonce),
             *pending_end = SLOT(acct, pool.s_pending_end);
    if (txs == NULL || acct_nonce == NULL || pending_end == NULL || !PyDict_CheckExact(txs)) return 0;
    static PyObject *nonce_name = NULL;
    if (nonce_name == NULL && (nonce_name = PyUnicode_InternFromString("nonce")) == NULL) return -1;
    PyObject *nonce = PyObject_GetAttr(state, nonce_name);
    if (nonce == NULL) return -1;
    PyObject *least = PyDict_GetItemWithError(floor, sender); /* borrowed */
    int ok = least == NULL && PyErr_Occurred() ? -1 : 0;
    if (ok == 0 && least != NULL && (ok = less(nonce, least)) > 0) {
        Py_INCREF(least);
        Py_SETREF(nonce, least);
    }
    if (ok < 0) goto out;
    /* the new nonce is the end of the pending run, and that run is everything held */
    if ((ok = PyObject_RichCompareBool(nonce, pending_end, Py_EQ)) != 1) goto out;
    if ((ok = less(acct_nonce, nonce)) != 1) goto out;
    long long first = PyLong_AsLongLong(acct_nonce), end = PyLong_AsLongLong(nonce);
    if ((first == -1 || end == -1) && PyErr_Occurred()) {
        PyErr_Clear(); /* beyond 64 bits: Python's path */
        ok = 0;
        goto out;
    }
    if (end - first != (long long)PyDict_GET_SIZE(txs)) {
        ok = 0;
        goto out;
    }
    /* every one of them included by the block (checked before anything changes) */
    for (long long n = first; n < end; n++) {
        PyObject *key = PyLong_FromLongLong(n);
        PyObject *entry = key == NULL ? NULL : PyDict_GetItemWithError(txs, key);
        Py_XDECREF(key);
        PyObject *tx = entry == NULL ? NULL : SLOT(entry, pool.e_tx);
        if (tx == NULL || !PyTuple_Check(tx) || PyTuple_GET_SIZE(tx) < 15) {
            ok = PyErr_Occurred() ? -1 : 0;
            goto out;
        }
        if ((ok = PySet_Contains(included, PyTuple_GET_ITEM(tx, 13))) != 1) goto out;
    }
    /* the hashes out of the index, then the record (its transactions with it) */
    Py_ssize_t position = 0;
    PyObject *key, *entry;
    while (PyDict_Next(txs, &position, &key, &entry))
        if (PyDict_DelItem(by_hash, PyTuple_GET_ITEM(SLOT(entry, pool.e_tx), 13)) < 0) {
            ok = -1;
            goto out;
        }
    PyObject *count = PyLong_FromLongLong(end - first);
    PyObject *total = count == NULL ? NULL : PyNumber_Subtract(counters[0], count);
    PyObject *taken = total == NULL ? NULL : PyNumber_Add(counters[1], count);
    Py_XDECREF(count);
    if (taken == NULL) {
        Py_XDECREF(total);
        ok = -1;
        goto out;
    }
    Py_SETREF(counters[0], total);
    Py_SETREF(counters[1], taken);
    Py_INCREF(acct);
    ok = PyDict_DelItem(senders, sender) == 0 ? 1 : -1;
    if (ok == 1) { /* starved.pop(sender, None) */
        int waits = PyDict_Contains(starved, sender);
        if (waits < 0 || (waits && PyDict_DelItem(starved, sender) < 0)) ok = -1;
    }
    Py_DECREF(acct);
out:
    Py_DECREF(nonce);
    return ok;
}

static PyObject *native_settle_included(PyObject *self, PyObject *args) {
    PyObject *mempool, *senders, *by_hash, *starved, *items, *floor, *included;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!nO!O!", &mempool, &PyDict_Type, &senders, &PyDict_Type, &by_hash,
                          &PyDict_Type, &starved, &PyList_Type, &items, &start, &PyDict_Type, &floor, &PySet_Type,
                          &included))
        return NULL;
    if (pool.sender_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "settle_included: configure_pool() first");
        return NULL;
    }
    static const char *const names[2] = {"_pending_total", "_included"};
    PyObject *counters[2];
    if (read_counters(mempool, names, 2, counters) < 0) return NULL;
    Py_ssize_t i = start < 0 ? 0 : start;
    int failed = 0;
    for (; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) break;
        Py_INCREF(item);
        int done = settle_one(senders, by_hash, starved, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), floor,
                              included, counters);
        Py_DECREF(item);
        if (done < 0) failed = 1;
        if (done <= 0) break;
    }
    return write_counters(mempool, names, 2, counters, failed, i);
}


/* ---- The pool's block selection (Mempool.select): one heap of the senders' heads ------------- */

typedef struct {
    PyObject *first, *second, *seq, *acct, *entry; /* owned */
} Head;

static void head_clear(Head *h) {
    Py_XDECREF(h->first);
    Py_XDECREF(h->second);
    Py_XDECREF(h->seq);
    Py_XDECREF(h->acct);
    Py_XDECREF(h->entry);
}

/* a before b: (first, second, seq) ascending, as select's tuples compare (seq is unique). 1, 0, -1 error. */
static int head_before(const Head *a, const Head *b) {
    PyObject *x[3] = {a->first, a->second, a->seq}, *y[3] = {b->first, b->second, b->seq};
    for (int k = 0; k < 3; k++) {
        int lt = less(x[k], y[k]);
        if (lt != 0) return lt;
        int gt = less(y[k], x[k]);
        if (gt != 0) return gt < 0 ? -1 : 0;
    }
    return 0;
}

static int sift_down(Head *heap, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t least = i, left = 2 * i + 1, right = left + 1;
        int before;
        if (left < n) {
            if ((before = head_before(&heap[left], &heap[least])) < 0) return -1;
            if (before) least = left;
        }
        if (right < n) {
            if ((before = head_before(&heap[right], &heap[least])) < 0) return -1;
            if (before) least = right;
        }
        if (least == i) return 0;
        Head t = heap[i];
        heap[i] = heap[least];
        heap[least] = t;
        i = least;
    }
}

static int sift_up(Head *heap, Py_ssize_t i) {
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        int before = head_before(&heap[i], &heap[parent]);
        if (before <= 0) return before;
        Head t = heap[i];
        heap[i] = heap[parent];
        heap[parent] = t;
        i = parent;
    }
    return 0;
}

/* The head for ``acct``'s transaction at ``nonce``: its priority by the policy (``priority`` called,
   or FeePriority's inlined when ``fee_priority``). 0, or -1. */
static int make_head(Head *h, PyObject *acct, PyObject *nonce, PyObject *priority, int fee_priority,
                     PyObject *base_fee) {
    memset(h, 0, sizeof *h);
    PyObject *entry = PyDict_GetItemWithError(SLOT(acct, pool.s_txs), nonce); /* borrowed */
    if (entry == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "select: a pending nonce the sender does not hold");
        return -1;
    }
    PyObject *tx = SLOT(entry, pool.e_tx), *seq = SLOT(entry, pool.e_seq);
    if (tx == NULL || seq == NULL || !PyTuple_Check(tx) || PyTuple_GET_SIZE(tx) < 15) {
        PyErr_SetString(PyExc_TypeError, "select: a pool entry that is not one");
        return -1;
    }
    if (fee_priority) { /* FeePriority.priority: (max(-tip, base_fee - fee_cap), seq) */
        PyObject *neg_tip = PyNumber_Negative(PyTuple_GET_ITEM(tx, 2));
        PyObject *room = neg_tip == NULL ? NULL : PyNumber_Subtract(base_fee, PyTuple_GET_ITEM(tx, 3));
        int lower = room == NULL ? -1 : less(neg_tip, room);
        if (lower < 0) {
            Py_XDECREF(neg_tip);
            Py_XDECREF(room);
            return -1;
        }
        h->first = lower ? room : neg_tip;
        Py_DECREF(lower ? neg_tip : room);
        Py_INCREF(seq);
        h->second = seq;
    } else {
        PyObject *got = PyObject_CallFunctionObjArgs(priority, tx, seq, base_fee, NULL);
        if (got == NULL) return -1;
        if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 2) {
            Py_DECREF(got);
            PyErr_SetString(PyExc_TypeError, "select: a priority is a pair");
            return -1;
        }
        h->first = PyTuple_GET_ITEM(got, 0);
        h->second = PyTuple_GET_ITEM(got, 1);
        Py_INCREF(h->first);
        Py_INCREF(h->second);
        Py_DECREF(got);
    }
    Py_INCREF(seq);
    Py_INCREF(acct);
    Py_INCREF(entry);
    h->seq = seq;
    h->acct = acct;
    h->entry = entry;
    return 0;
}

static PyObject *native_select_pending(PyObject *self, PyObject *args) {
    PyObject *senders, *priority, *base_fee, *gas_limit, *min_gas;
    int fee_priority;
    Py_ssize_t max_count;
    if (!PyArg_ParseTuple(args, "O!OpO!O!nO!", &PyDict_Type, &senders, &priority, &fee_priority, &PyLong_Type,
                          &base_fee, &PyLong_Type, &gas_limit, &max_count, &PyLong_Type, &min_gas))
        return NULL;
    if (pool.sender_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "select_pending: configure_pool() first");
        return NULL;
    }
    Py_ssize_t capacity = PyDict_GET_SIZE(senders) + 1, n = 0;
    Head *heap = PyMem_Calloc((size_t)capacity, sizeof(Head));
    PyObject *taken = PyList_New(0), *gas_left = gas_limit, *key, *acct;
    Py_INCREF(gas_left);
    int failed = heap == NULL || taken == NULL;
    if (heap == NULL) PyErr_NoMemory();
    PyObject *held = failed ? NULL : PyDict_Values(senders); /* (a policy call could change the dict) */
    failed |= held == NULL;
    for (Py_ssize_t k = 0; !failed && k < PyList_GET_SIZE(held); k++) {
        acct = PyList_GET_ITEM(held, k);
        if (!PyObject_TypeCheck(acct, pool.sender_type) || SLOT(acct, pool.s_txs) == NULL ||
            SLOT(acct, pool.s_nonce) == NULL || SLOT(acct, pool.s_pending_end) == NULL) {
            PyErr_SetString(PyExc_TypeError, "select: a sender record that is not one");
            failed = 1;
            break;
        }
        int has = less(SLOT(acct, pool.s_nonce), SLOT(acct, pool.s_pending_end));
        if (has < 0 || (has && make_head(&heap[n++], acct, SLOT(acct, pool.s_nonce), priority, fee_priority,
                                         base_fee) < 0))
            failed = 1;
    }
    (void)key;
    for (Py_ssize_t i = n / 2 - 1; !failed && i >= 0; i--)
        if (sift_down(heap, n, i) < 0) failed = 1;
    while (!failed && n > 0 && PyList_GET_SIZE(taken) < max_count) {
        int room = less(gas_left, min_gas);
        if (room != 0) {
            failed = room < 0;
            break;
        }
        Head top = heap[0];
        heap[0] = heap[--n];
        memset(&heap[n], 0, sizeof(Head));
        if (n > 0 && sift_down(heap, n, 0) < 0) {
            head_clear(&top);
            failed = 1;
            break;
        }
        PyObject *tx = SLOT(top.entry, pool.e_tx), *gas = PyTuple_GET_ITEM(tx, 4);
        int skip = less(PyTuple_GET_ITEM(tx, 3), base_fee);
        if (skip == 0) skip = less(gas_left, gas);
        if (skip != 0) {
            failed = skip < 0;
            head_clear(&top);
            continue;
        }
        PyObject *left = PyNumber_Subtract(gas_left, gas);
        PyObject *following = left == NULL ? NULL : PyNumber_Add(PyTuple_GET_ITEM(tx, 1), exe.one);
        if (following == NULL || PyList_Append(taken, tx) < 0) {
            Py_XDECREF(left);
            Py_XDECREF(following);
            head_clear(&top);
            failed = 1;
            break;
        }
        Py_SETREF(gas_left, left);
        int more = less(following, SLOT(top.acct, pool.s_pending_end));
        if (more < 0 || (more && (make_head(&heap[n], top.acct, following, priority, fee_priority, base_fee) < 0 ||
                                  sift_up(heap, n++) < 0)))
            failed = 1;
        Py_DECREF(following);
        head_clear(&top);
    }
    for (Py_ssize_t i = 0; heap != NULL && i < capacity; i++) head_clear(&heap[i]);
    PyMem_Free(heap);
    Py_XDECREF(held);
    Py_DECREF(gas_left);
    if (failed) {
        Py_XDECREF(taken);
        return NULL;
    }
    return taken;
}

/* services/sequencer/_tx_index._fill: each hash (>= 8 bytes) sets 6 bits (3 pairs) in one 64-bit
 * word of ``bits`` (a writable buffer of a power-of-two count of native uint64 words), all from its
 * first 8 bytes read little-endian: x; word x & (words - 1); pairs from 12-bit slices of y = x >> 20,
 * a pair from v being 1 << (v & 63) | 1 << (v >> 6). The per-hash loop in Python was ~0.4 us. */
static inline uint64_t bit_pair(uint64_t v) { return (UINT64_C(1) << (v & 63)) | (UINT64_C(1) << (v >> 6)); }

static PyObject *native_bloom_fill(PyObject *self, PyObject *args) {
    PyObject *bits_object, *hashes;
    if (!PyArg_ParseTuple(args, "OO!", &bits_object, &PyList_Type, &hashes)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(bits_object, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    PyObject *result = NULL;
    size_t words = (size_t)view.len / 8;
    if ((size_t)view.len % 8 != 0 || words == 0 || (words & (words - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "bloom_fill: bits must be a power-of-two count of 8-byte words");
        goto done;
    }
    uint8_t *base = view.buf; /* any alignment (a buffer need not be aligned): words through memcpy */
    Py_ssize_t n = PyList_GET_SIZE(hashes);
    for (Py_ssize_t i = 0; i < n; i++) { /* all checked first: a refusal changes no bit */
        PyObject *h = PyList_GET_ITEM(hashes, i);
        if (!PyBytes_Check(h) || PyBytes_GET_SIZE(h) < 8) {
            PyErr_SetString(PyExc_TypeError, "bloom_fill: every hash is bytes of at least 8");
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(PyList_GET_ITEM(hashes, i));
        uint64_t x = 0;
        for (int k = 7; k >= 0; k--) x = x << 8 | b[k];
        uint64_t y = x >> 20;
        uint8_t *at = base + 8 * (x & (words - 1));
        uint64_t w;
        memcpy(&w, at, 8);
        w |= bit_pair(y & 4095) | bit_pair(y >> 12 & 4095) | bit_pair(y >> 24 & 4095);
        memcpy(at, &w, 8);
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", native_configure, METH_VARARGS,
     "configure(ctx, parse_compact, recover, serialize, uncompressed_flag): libsecp256k1's context and "
     "function addresses (coincurve's), once per process."},
    {"keccak256", native_keccak256, METH_O, "keccak256(data) -> the 32-byte digest."},
    {"recover_senders", native_recover_senders, METH_O,
     "recover_senders([(raw, body, unsigned_end), ...]) -> [(sender or None, tx_hash), ...], the GIL released "
     "once for the whole list."},
    {"configure_rules", native_configure_rules, METH_VARARGS,
     "configure_rules(n, half_n, max_nonce, block_gas_limit, base_gas, zero_byte_gas, nonzero_byte_gas, "
     "message_passer): the stateless rules decode_common checks (from _rules.py), once per process."},
    {"decode_common", native_decode_common, METH_VARARGS,
     "decode_common(raws, chain_id, max_size, tx_type) -> [tx_type(...) or None, ...]: the transactions of the "
     "common shape that pass every stateless rule, parsed, hashed and recovered with the GIL released once; None "
     "for every other item (the Python decoder decides those)."},
    {"hash_level", native_hash_level, METH_VARARGS,
     "hash_level(below, above, parents, arity): above[p] = keccak256(below[p*arity] || ... || below[p*arity+arity-1]) "
     "for each p in parents (children 32 bytes each)."},
    {"leaf_hashes", native_leaf_hashes, METH_VARARGS,
     "leaf_hashes(leaves, TxLeaf) -> [keccak256(leaf.encode()), ...]: a TxLeaf's as keccak256(0x00 || raw), "
     "read in place; any other leaf's through its encode()."},
    {"account_leaves", native_account_leaves, METH_VARARGS,
     "account_leaves(addresses, accounts, next_of, indices) -> [keccak256(address || uint64 nonce || uint256 "
     "balance || next), ...] for each slot in indices; accounts[i] is (nonce, balance)."},
    {"configure_execution", native_configure_execution, METH_VARARGS,
     "configure_execution(Account, TxResult, EMPTY_ACCOUNT, FEE_VAULT, ZERO_ADDRESS, MESSAGE_PASSER, TX_BASE_GAS, "
     "UINT256_MAX): what apply_plain needs of protocol._execution and _rules, once per process."},
    {"apply_plain", native_apply_plain, METH_VARARGS,
     "apply_plain(accounts, dirty, txs, start, base_fee, gas_limit, gas_used, applied) -> (index, gas_used): "
     "protocol._execution.apply_plain's loop (see there)."},
    {"configure_pool", native_configure_pool, METH_VARARGS,
     "configure_pool(_Sender, _Entry, AddResult, TxStatus.PENDING, _NO_HASHES): the pool's classes, once per "
     "process."},
    {"add_pending", native_add_pending, METH_VARARGS,
     "add_pending(mempool, senders, by_hash, account_state, txs, start, now, out, min_tip, block_gas_limit, "
     "account_slots, max_tx_size, global_slots) -> index: "
     "services.sequencer._mempool's common add (see Mempool.add_many)."},
    {"settle_included", native_settle_included, METH_VARARGS,
     "settle_included(mempool, senders, by_hash, starved, items, start, floor, included) -> index: "
     "services.sequencer._mempool's common account update after a block (see Mempool.on_block)."},
    {"bloom_fill", native_bloom_fill, METH_VARARGS,
     "bloom_fill(bits, hashes): services.sequencer._tx_index's filter bits of each hash set in bits (see _fill)."},
    {"select_pending", native_select_pending, METH_VARARGS,
     "select_pending(senders, priority, fee_priority, base_fee, gas_limit, max_count, min_gas) -> [tx, ...]: "
     "services.sequencer._mempool's Mempool.select (see there)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_native", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
