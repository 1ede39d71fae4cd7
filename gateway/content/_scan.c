/* The content normaliser and phrase matcher in C: what gateway/content/normalise.py and matcher.py describe, at
   a few nanoseconds a character instead of a regular-expression pass per step.

   normalise(text, markup) gives the matching form " word word … " of a page (markup true) or of a phrase or search
   (false); strip_markup(text) gives a page's visible text; Automaton(patterns).hits(text) finds every pattern (a
   normalised phrase padded with spaces) in normalised text, and scan_page(page) does both for a page in one call.
   The steps are the ones the Python normaliser made as regular-expression passes, with the same result on every
   input (tests/content/test_native_normalise.py holds it to that normaliser, kept in
   tests/support/reference_normalise.py):

   markup out, as these steps one after another would take it: script, style, noscript, template and svg elements
   dropped; comments removed; inline tags removed; other tags to spaces (one pass reads every '<' as the first of
   them that matches there, and hands over to the four steps one by one where that could differ); then entities
   decoded (as html.unescape) and JSON string escapes decoded. Then one pass folds case, accents and letter
   variants (Python hands over the fold of each non-ASCII character, which needs unicodedata, and it is kept once
   asked for), reads leetspeak inside words, turns everything but letters and digits into word breaks, joins runs
   of three or more single letters and collapses repeated letters.

   The markup steps work in place (none makes the text longer) on a UCS-4 copy of the page, in buffers kept from
   one call to the next. The module keeps that state and the tables in C globals: it is for one interpreter, and
   the GIL (mitmproxy's one event loop) serialises its calls. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef Py_UCS4 U;

/* -- helpers ------------------------------------------------------------------------------------------------- */

typedef struct {
    U *p;
    Py_ssize_t n, cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->n + extra <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) {
        cap *= 2;
    }
    U *p = PyMem_Realloc(b->p, (size_t)cap * sizeof(U));
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* The first `c` at or after `from`, or -1. Most of a page is passed over here: 16 characters at a time. */
static Py_ssize_t
find(const U *s, Py_ssize_t from, Py_ssize_t n, U c)
{
    Py_ssize_t i = from;
#ifdef __SSE2__
    __m128i needle = _mm_set1_epi32((int)c);
    for (; i + 16 <= n; i += 16) {
        const __m128i *v = (const __m128i *)(s + i);
        __m128i a = _mm_cmpeq_epi32(_mm_loadu_si128(v), needle);
        __m128i b = _mm_cmpeq_epi32(_mm_loadu_si128(v + 1), needle);
        __m128i x = _mm_cmpeq_epi32(_mm_loadu_si128(v + 2), needle);
        __m128i y = _mm_cmpeq_epi32(_mm_loadu_si128(v + 3), needle);
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(x, y)))) {
            break;
        }
    }
#endif
    for (; i < n; i++) {
        if (s[i] == c) {
            return i;
        }
    }
    return -1;
}

static inline int
ascii_alpha(U c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static inline int
is_digit(U c)
{
    return c >= '0' && c <= '9';
}

static inline int
is_hex(U c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static inline int
hex_value(U c)
{
    return is_digit(c) ? (int)(c - '0') : (int)((c | 0x20) - 'a' + 10);
}

/* Python's str.isalnum() for one character: what the regular expressions' \w is, less the underscore. */
static inline int
is_alnum(U c)
{
    if (c < 128) {
        return is_digit(c) || ascii_alpha(c);
    }
    return Py_UNICODE_ISALNUM(c);
}

static inline int
is_word(U c)
{
    return c == '_' || is_alnum(c);
}

/* -- the tables Python hands over once (configure) ------------------------------------------------------------ */

static PyObject *fold_func;  /* int -> str: a non-ASCII character's fold */
static PyObject *fold_cache; /* int -> str, for what the table below does not hold (emoji …), up to FOLDS_KEPT */
#define FOLDS_KEPT 4096
/* Folds of BMP characters asked for so far: 0 not yet asked, else (offset in fold_pool << 4) | (length + 1). */
static uint32_t fold_bmp[0x10000];
static Buf fold_pool;

typedef struct {
    char name[33];
    unsigned char len, value_len;
    U value[2];
} Entity;

/* html.entities.html5 in an open-addressing table; its names are ASCII and at most 32 characters long. */
static Entity *entities;
static size_t entity_mask;

typedef struct {
    uint32_t code;
    int len;
    U value;
} CharRef;

/* Numeric character references html.unescape does not read as the code point itself, sorted by code. */
static CharRef *charrefs;
static Py_ssize_t charref_count;

static int configured;

static uint32_t
name_hash(const U *s, Py_ssize_t len)
{
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < len; i++) {
        h = (h ^ (uint32_t)s[i]) * 16777619u;
    }
    return h;
}

static const Entity *
entity_lookup(const U *s, Py_ssize_t len)
{
    if (entities == NULL || len > 32) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (s[i] >= 128) {
            return NULL;
        }
    }
    for (size_t slot = name_hash(s, len) & entity_mask;; slot = (slot + 1) & entity_mask) {
        const Entity *e = &entities[slot];
        if (e->len == 0) {
            return NULL;
        }
        if (e->len == len) {
            Py_ssize_t i = 0;
            while (i < len && (U)(unsigned char)e->name[i] == s[i]) {
                i++;
            }
            if (i == len) {
                return e;
            }
        }
    }
}

static int
load_entities(PyObject *html5)
{
    Py_ssize_t count = PyDict_Size(html5);
    size_t size = 16;
    while (size < (size_t)count * 2) {
        size *= 2;
    }
    Entity *table = PyMem_Calloc(size, sizeof(Entity));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(html5, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyUnicode_Check(value) || !PyUnicode_IS_ASCII(key)
            || PyUnicode_GET_LENGTH(key) < 1 || PyUnicode_GET_LENGTH(key) > 32 || PyUnicode_GET_LENGTH(value) > 2) {
            PyMem_Free(table);
            PyErr_Format(PyExc_ValueError, "entity %R -> %R: expected an ASCII name of up to 32 characters and "
                                           "a value of up to 2", key, value);
            return -1;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        U name[32];
        for (Py_ssize_t i = 0; i < len; i++) {
            name[i] = PyUnicode_READ_CHAR(key, i);
        }
        size_t slot = name_hash(name, len) & (size - 1);
        while (table[slot].len) {
            slot = (slot + 1) & (size - 1);
        }
        Entity *e = &table[slot];
        for (Py_ssize_t i = 0; i < len; i++) {
            e->name[i] = (char)name[i];
        }
        e->len = (unsigned char)len;
        e->value_len = (unsigned char)PyUnicode_GET_LENGTH(value);
        for (Py_ssize_t i = 0; i < e->value_len; i++) {
            e->value[i] = PyUnicode_READ_CHAR(value, i);
        }
    }
    PyMem_Free(entities);
    entities = table;
    entity_mask = size - 1;
    return 0;
}

static int
compare_charrefs(const void *a, const void *b)
{
    uint32_t x = ((const CharRef *)a)->code, y = ((const CharRef *)b)->code;
    return x < y ? -1 : x > y;
}

static int
load_charrefs(PyObject *special)
{
    Py_ssize_t count = PyDict_Size(special);
    CharRef *table = PyMem_Calloc((size_t)(count ? count : 1), sizeof(CharRef));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, i = 0;
    while (PyDict_Next(special, &pos, &key, &value)) {
        long code = PyLong_Check(key) ? PyLong_AsLong(key) : -1;
        if (code < 0 || code > 0x10FFFF || !PyUnicode_Check(value) || PyUnicode_GET_LENGTH(value) > 1) {
            PyMem_Free(table);
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "character reference %R -> %R: expected a code point and at most "
                                               "one character", key, value);
            }
            return -1;
        }
        table[i].code = (uint32_t)code;
        table[i].len = (int)PyUnicode_GET_LENGTH(value);
        table[i].value = table[i].len ? PyUnicode_READ_CHAR(value, 0) : 0;
        i++;
    }
    qsort(table, (size_t)count, sizeof(CharRef), compare_charrefs);
    PyMem_Free(charrefs);
    charrefs = table;
    charref_count = count;
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *fold, *html5, *special;
    if (!PyArg_ParseTuple(args, "OO!O!:configure", &fold, &PyDict_Type, &html5, &PyDict_Type, &special)) {
        return NULL;
    }
    if (!PyCallable_Check(fold)) {
        PyErr_SetString(PyExc_TypeError, "configure: fold must be callable");
        return NULL;
    }
    if (load_entities(html5) < 0 || load_charrefs(special) < 0) {
        return NULL;
    }
    PyObject *cache = PyDict_New();
    if (cache == NULL) {
        return NULL;
    }
    Py_XSETREF(fold_cache, cache);
    Py_XSETREF(fold_func, Py_NewRef(fold));
    memset(fold_bmp, 0, sizeof(fold_bmp));
    fold_pool.n = 0;
    configured = 1;
    Py_RETURN_NONE;
}

/* -- markup --------------------------------------------------------------------------------------------------- */

/* Copy the kept text s[*r, upto) down to s[*w …) and move both on. */
static inline void
keep(U *s, Py_ssize_t *r, Py_ssize_t *w, Py_ssize_t upto)
{
    Py_ssize_t len = upto - *r;
    if (len > 0 && *w != *r) {
        memmove(s + *w, s + *r, (size_t)len * sizeof(U));
    }
    *w += len;
    *r = upto;
}

/* What a markup matcher found at a '<': where the construct ends, or that it is not there, or that none can be
   from here on (its end, a '>' or "-->", is nowhere further on). */
enum { NOT_HERE = -1, NONE_FURTHER = -2 };

static const char *const DROPPED[] = {"script", "style", "noscript", "template", "svg"};
static const Py_ssize_t DROPPED_LEN[] = {6, 5, 8, 8, 3};

static inline U
lower(U c)
{
    return c < 128 ? ((c >= 'A' && c <= 'Z') ? c + 32 : c) : Py_UNICODE_TOLOWER(c);
}

/* One character of a dropped element's name, as re.IGNORECASE compares it: by lower case, and 'ſ' and 'ı' count as
   's' and 'i'. */
static inline int
name_char(U c, char want)
{
    U low = lower(c);
    return low == (U)want || (want == 's' && low == 0x17F) || (want == 'i' && low == 0x131);
}

/* What one run over the markup has learnt so far, so that no page makes it search the rest of the text at every
   '<' (as the regular expressions did): the names of dropped elements never closed from some place on (a closing tag
   not found from one place is not found from any later one either), the last '>' found and where the search for it
   started (it is the first '>' from anywhere between the two), and whether a comment can still end. */
typedef struct {
    struct {
        U name[8];
        Py_ssize_t len, failed_from;
    } unclosed[16];
    int unclosed_count;
    Py_ssize_t gt_from, gt;
    int no_comment_end;
} Markup;

/* The first '>' at or after `from`, or -1. */
static inline Py_ssize_t
next_gt(const U *s, Py_ssize_t from, Py_ssize_t n, Markup *m)
{
    if (m->gt_from > from || (m->gt >= 0 && m->gt < from)) {
        m->gt_from = from;
        m->gt = find(s, from, n, '>');
    }
    return m->gt;
}

/* <script …>…</script> (any case; and style, noscript, template, svg) up to the first closing tag of the same name.
   An element never closed is not one: its tag goes as any other. */
static Py_ssize_t
element_end(const U *s, Py_ssize_t p, Py_ssize_t n, Markup *m)
{
    Py_ssize_t q = p + 1, len = 0;
    if (q >= n || !(name_char(s[q], 's') || name_char(s[q], 'n') || name_char(s[q], 't'))) {
        return NOT_HERE;
    }
    for (size_t k = 0; k < sizeof(DROPPED) / sizeof(DROPPED[0]) && !len; k++) {
        Py_ssize_t l = DROPPED_LEN[k], i = 0;
        while (i < l && q + i < n && name_char(s[q + i], DROPPED[k][i])) {
            i++;
        }
        if (i == l && (q + l == n || !is_word(s[q + l]))) {
            len = l;
        }
    }
    if (!len) {
        return NOT_HERE;
    }
    Py_ssize_t gt = next_gt(s, q + len, n, m);
    if (gt < 0) {
        return NONE_FURTHER;
    }
    U name[8];
    for (Py_ssize_t i = 0; i < len; i++) {
        name[i] = lower(s[q + i]);
    }
    int known = -1;
    for (int i = 0; i < m->unclosed_count && known < 0; i++) {
        if (m->unclosed[i].len == len && !memcmp(m->unclosed[i].name, name, (size_t)len * sizeof(U))) {
            known = i;
        }
    }
    if (known >= 0 && m->unclosed[known].failed_from <= gt + 1) {
        return NOT_HERE;
    }
    for (Py_ssize_t at = gt + 1, lt; (lt = find(s, at, n, '<')) >= 0; at = lt + 1) {
        if (lt + 2 + len > n || s[lt + 1] != '/') {
            continue;
        }
        Py_ssize_t i = 0;
        while (i < len && lower(s[lt + 2 + i]) == name[i]) {
            i++;
        }
        if (i < len) {
            continue;
        }
        Py_ssize_t k = lt + 2 + len;
        while (k < n && Py_UNICODE_ISSPACE(s[k])) {
            k++;
        }
        if (k < n && s[k] == '>') {
            return k + 1;
        }
    }
    if (known < 0 && m->unclosed_count < 16) {
        known = m->unclosed_count++;
        memcpy(m->unclosed[known].name, name, (size_t)len * sizeof(U));
        m->unclosed[known].len = len;
        m->unclosed[known].failed_from = gt + 1;
    }
    return NOT_HERE;
}

/* <!-- … --> */
static Py_ssize_t
comment_end(const U *s, Py_ssize_t p, Py_ssize_t n, Markup *m)
{
    if (p + 3 >= n || s[p + 1] != '!' || s[p + 2] != '-' || s[p + 3] != '-') {
        return NOT_HERE;
    }
    if (m->no_comment_end) {
        return NONE_FURTHER;
    }
    for (Py_ssize_t at = p + 6, gt; (gt = find(s, at, n, '>')) >= 0; at = gt + 1) {
        if (s[gt - 1] == '-' && s[gt - 2] == '-') {
            return gt + 1;
        }
    }
    m->no_comment_end = 1;
    return NONE_FURTHER;
}

/* The inline tags' names, a letter a byte: a, abbr, b, bdi, bdo, code, em, font, i, mark, q, s, small, span,
   strong, sub, sup, u, wbr. */
#define NAME2(a, b) ((uint64_t)(a) | (uint64_t)(b) << 8)
#define NAME3(a, b, c) (NAME2(a, b) | (uint64_t)(c) << 16)
#define NAME4(a, b, c, d) (NAME3(a, b, c) | (uint64_t)(d) << 24)
#define NAME5(a, b, c, d, e) (NAME4(a, b, c, d) | (uint64_t)(e) << 32)
#define NAME6(a, b, c, d, e, f) (NAME5(a, b, c, d, e) | (uint64_t)(f) << 40)
static const uint64_t INLINE[] = {
    'a', NAME4('a', 'b', 'b', 'r'), 'b', NAME3('b', 'd', 'i'), NAME3('b', 'd', 'o'), NAME4('c', 'o', 'd', 'e'),
    NAME2('e', 'm'), NAME4('f', 'o', 'n', 't'), 'i', NAME4('m', 'a', 'r', 'k'), 'q', 's',
    NAME5('s', 'm', 'a', 'l', 'l'), NAME4('s', 'p', 'a', 'n'), NAME6('s', 't', 'r', 'o', 'n', 'g'),
    NAME3('s', 'u', 'b'), NAME3('s', 'u', 'p'), 'u', NAME3('w', 'b', 'r')};

/* An inline tag's name (ASCII letters), all lower or all upper case. */
static int
inline_name(const U *s, Py_ssize_t len)
{
    uint64_t name = 0;
    int upper = s[0] < 'a';
    for (Py_ssize_t i = 0; i < len; i++) {
        if ((s[i] < 'a') != upper) {
            return 0;
        }
        name |= (uint64_t)(s[i] | 0x20) << (8 * i);
    }
    for (size_t k = 0; k < sizeof(INLINE) / sizeof(INLINE[0]); k++) {
        if (INLINE[k] == name) {
            return 1;
        }
    }
    return 0;
}

/* An inline tag (<b>, </span> …), which does not separate words: "p<b></b>orn" is one word. */
static Py_ssize_t
inline_end(const U *s, Py_ssize_t p, Py_ssize_t n, Markup *m)
{
    Py_ssize_t q = p + 1 < n && s[p + 1] == '/' ? p + 2 : p + 1, len = 0;
    /* Their first letters, a bit each from 'a': a b c e f i m q s u w. */
    const uint32_t first_letters = 1u << 0 | 1u << 1 | 1u << 2 | 1u << 4 | 1u << 5 | 1u << 8 | 1u << 12 | 1u << 16
                                   | 1u << 18 | 1u << 20 | 1u << 22;
    if (q >= n || !ascii_alpha(s[q]) || !(first_letters >> ((s[q] | 0x20) - 'a') & 1)) {
        return NOT_HERE;
    }
    while (q + len < n && len < 7 && ascii_alpha(s[q + len])) {
        len++;
    }
    if (!len || len > 6 || q + len >= n) {
        return NOT_HERE;
    }
    U next = s[q + len];
    if (!(next == '/' || next == '>' || Py_UNICODE_ISSPACE(next)) || !inline_name(s + q, len)) {
        return NOT_HERE;
    }
    Py_ssize_t gt = next_gt(s, q + len, n, m);
    return gt < 0 ? NONE_FURTHER : gt + 1;
}

/* Any other tag: <p …>, </div>, <!doctype …>. */
static Py_ssize_t
tag_end(const U *s, Py_ssize_t p, Py_ssize_t n, Markup *m)
{
    Py_ssize_t q = p + 1 < n && s[p + 1] == '/' ? p + 2 : p + 1;
    if (q >= n || !(ascii_alpha(s[q]) || s[q] == '!')) {
        return NOT_HERE;
    }
    Py_ssize_t gt = next_gt(s, q + 1, n, m);
    return gt < 0 ? NONE_FURTHER : gt + 1;
}

enum { ELEMENTS, COMMENTS, INLINE_TAGS, TAGS };

/* One markup step over the whole text, in place: what it matches removed, or made a space (elements, tags). */
static Py_ssize_t
markup_step(U *s, Py_ssize_t n, int step)
{
    Markup m = {.gt_from = n + 1};
    Py_ssize_t r = 0, w = 0, scan = 0, p;
    while ((p = find(s, scan, n, '<')) >= 0) {
        Py_ssize_t end = step == ELEMENTS      ? element_end(s, p, n, &m)
                         : step == COMMENTS    ? comment_end(s, p, n, &m)
                         : step == INLINE_TAGS ? inline_end(s, p, n, &m)
                                               : tag_end(s, p, n, &m);
        if (end == NONE_FURTHER) {
            break;
        }
        if (end == NOT_HERE) {
            scan = p + 1;
            continue;
        }
        keep(s, &r, &w, p);
        if (step == ELEMENTS || step == TAGS) {
            s[w++] = ' ';
        }
        r = scan = end;
    }
    keep(s, &r, &w, n);
    return w;
}

/* The four markup steps in one pass, reading each '<' as the first step that matches there. That is what the
   steps one after another do, unless one step's output could read differently to the next. That cannot happen
   where a '<' matches nothing and is followed neither by another '<' nor by "</" (its next characters stay as they
   are), or where elements dropped inside a comment end inside it (the comment goes whole either way). Anything else
   ('<' inside a tag, an element that runs out of a comment, "<<b>x>") gives -1, with the text as it was up to
   where it stopped, and the steps run one by one. */
static Py_ssize_t
markup_one_pass(U *s, Py_ssize_t n)
{
    Markup m = {.gt_from = n + 1};
    Py_ssize_t r = 0, w = 0, p = find(s, 0, n, '<');
    while (p >= 0) {
        int step = ELEMENTS;
        Py_ssize_t end = element_end(s, p, n, &m), next;
        if (end < 0) {
            step = COMMENTS;
            end = comment_end(s, p, n, &m);
        }
        if (end < 0) {
            step = INLINE_TAGS;
            end = inline_end(s, p, n, &m);
        }
        if (end < 0) {
            step = TAGS;
            end = tag_end(s, p, n, &m);
        }
        if (end < 0) {
            if (p + 1 < n && (s[p + 1] == '<' || (s[p + 1] == '/' && p + 2 < n && s[p + 2] == '<'))
                && next_gt(s, p + 1, n, &m) >= 0) {
                keep(s, &r, &w, n);
                return -1;
            }
            p = find(s, p + 1, n, '<'); /* text: kept as it is */
            continue;
        }
        if (step == ELEMENTS) {
            next = find(s, end, n, '<');
        }
        else {
            next = find(s, p + 1, n, '<');
            while (step == COMMENTS && next >= 0 && next < end) {
                Py_ssize_t inner = element_end(s, next, n, &m);
                if (inner > end - 3) { /* runs out of the comment */
                    keep(s, &r, &w, n);
                    return -1;
                }
                next = find(s, inner >= 0 ? inner : next + 1, n, '<');
            }
            if (next >= 0 && next < end) {
                keep(s, &r, &w, n);
                return -1;
            }
        }
        keep(s, &r, &w, p);
        if (step == ELEMENTS || step == TAGS) {
            s[w++] = ' ';
        }
        r = end;
        p = next;
    }
    keep(s, &r, &w, n);
    return w;
}

/* A numeric character reference's text, as html.unescape gives it; the length (0 or 1) of what it wrote. */
static int
charref(uint32_t code, U *out)
{
    Py_ssize_t lo = 0, hi = charref_count;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (charrefs[mid].code < code) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    int listed = lo < charref_count && charrefs[lo].code == code;
    /* html.unescape's order: its replacements first, then surrogates and numbers past Unicode (U+FFFD), then the
       code points it drops (listed with no replacement). */
    if (listed && charrefs[lo].len) {
        *out = charrefs[lo].value;
        return 1;
    }
    if ((code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) {
        *out = 0xFFFD;
        return 1;
    }
    if (listed) {
        return 0;
    }
    *out = code;
    return 1;
}

static inline int
entity_name_char(U c)
{
    return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';');
}

/* &amp; &#38; &#x26; and HTML5's names without their semicolon, as html.unescape reads them. */
static Py_ssize_t
decode_entities(U *s, Py_ssize_t n)
{
    Py_ssize_t r = 0, w = 0, scan = 0, p;
    while ((p = find(s, scan, n, '&')) >= 0) {
        scan = p + 1;
        U out[34];
        Py_ssize_t out_len = 0, end;
        if (p + 1 < n && s[p + 1] == '#') {
            uint32_t code = 0;
            Py_ssize_t q;
            if (p + 2 < n && is_digit(s[p + 2])) {
                for (q = p + 2; q < n && is_digit(s[q]); q++) {
                    code = code * 10 + (uint32_t)(s[q] - '0');
                    if (code > 0x110000) {
                        code = 0x110000; /* past Unicode: U+FFFD whatever the number */
                    }
                }
            }
            else if (p + 3 < n && (s[p + 2] == 'x' || s[p + 2] == 'X') && is_hex(s[p + 3])) {
                for (q = p + 3; q < n && is_hex(s[q]); q++) {
                    code = code * 16 + (uint32_t)hex_value(s[q]);
                    if (code > 0x110000) {
                        code = 0x110000;
                    }
                }
            }
            else {
                continue;
            }
            end = q < n && s[q] == ';' ? q + 1 : q;
            out_len = charref(code, out);
        }
        else {
            Py_ssize_t q = p + 1;
            while (q < n && q - (p + 1) < 32 && entity_name_char(s[q])) {
                q++;
            }
            if (q == p + 1) {
                continue;
            }
            end = q < n && s[q] == ';' ? q + 1 : q;
            const U *name = s + p + 1;
            Py_ssize_t len = end - (p + 1);
            const Entity *e = entity_lookup(name, len);
            Py_ssize_t cut = len;
            /* Not a name: the longest name of two characters or more it starts with, the rest kept after it. */
            while (e == NULL && --cut > 1) {
                e = entity_lookup(name, cut);
            }
            if (e == NULL) {
                continue; /* kept as it is */
            }
            for (int i = 0; i < e->value_len; i++) {
                out[out_len++] = e->value[i];
            }
            for (Py_ssize_t i = cut; i < len; i++) {
                out[out_len++] = name[i];
            }
        }
        keep(s, &r, &w, p);
        for (Py_ssize_t i = 0; i < out_len; i++) {
            s[w++] = out[i];
        }
        r = scan = end;
    }
    keep(s, &r, &w, n);
    return w;
}

/* JSON string escapes: \uXXXX to its character (half a surrogate pair to a space), \n \t \" … to a space. */
static Py_ssize_t
decode_json_escapes(U *s, Py_ssize_t n)
{
    Py_ssize_t r = 0, w = 0, scan = 0, p;
    while ((p = find(s, scan, n, '\\')) >= 0) {
        scan = p + 1;
        if (p + 1 >= n) {
            break;
        }
        U c = s[p + 1], out;
        Py_ssize_t end;
        if (c == 'u' && p + 5 < n && is_hex(s[p + 2]) && is_hex(s[p + 3]) && is_hex(s[p + 4]) && is_hex(s[p + 5])) {
            out = (U)(hex_value(s[p + 2]) << 12 | hex_value(s[p + 3]) << 8 | hex_value(s[p + 4]) << 4
                      | hex_value(s[p + 5]));
            if (out >= 0xD800 && out <= 0xDFFF) {
                out = ' ';
            }
            end = p + 6;
        }
        else if (c == 'n' || c == 'r' || c == 't' || c == 'b' || c == 'f' || c == '/' || c == '\\' || c == '"') {
            out = ' ';
            end = p + 2;
        }
        else {
            continue;
        }
        keep(s, &r, &w, p);
        s[w++] = out;
        r = scan = end;
    }
    keep(s, &r, &w, n);
    return w;
}

/* The text in s (a copy of `text`, with room for its length) without markup: its new length, or -1 on an error. */
static Py_ssize_t
strip(U *s, PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (find(s, 0, n, '<') >= 0) {
        Py_ssize_t fused = markup_one_pass(s, n);
        if (fused >= 0) {
            n = fused;
        }
        else {
            if (PyUnicode_AsUCS4(text, s, n, 0) == NULL) {
                return -1;
            }
            for (int step = ELEMENTS; step <= TAGS; step++) {
                n = markup_step(s, n, step);
            }
        }
    }
    if (find(s, 0, n, '&') >= 0) {
        n = decode_entities(s, n);
    }
    if (find(s, 0, n, '\\') >= 0) {
        n = decode_json_escapes(s, n);
    }
    return n;
}

/* -- folding and words ---------------------------------------------------------------------------------------- */

/* A non-ASCII character's fold, from the table or asked of Python once: *chars (valid until the next call) and
   *len. Folds outside the table (beyond the BMP, or long) are kept in a dict and copied to `spare`. */
static int
fold_of(U c, const U **chars, Py_ssize_t *len, Buf *spare)
{
    uint32_t entry = c < 0x10000 ? fold_bmp[c] : 0;
    if (entry) {
        *len = (entry & 15) - 1;
        *chars = fold_pool.p + (entry >> 4);
        return 0;
    }
    PyObject *key = PyLong_FromUnsignedLong(c);
    if (key == NULL) {
        return -1;
    }
    PyObject *folded = PyDict_GetItemWithError(fold_cache, key);
    if (folded != NULL) {
        Py_INCREF(folded);
    }
    else if (!PyErr_Occurred()) {
        folded = PyObject_CallOneArg(fold_func, key);
        if (folded != NULL && !PyUnicode_Check(folded)) {
            PyErr_Format(PyExc_TypeError, "fold(%U) gave %R, not a str", key, folded);
            Py_CLEAR(folded);
        }
    }
    if (folded == NULL) {
        Py_DECREF(key);
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(folded);
    Buf *into = spare;
    int status = 0;
    if (c < 0x10000 && n <= 14) {
        into = &fold_pool;
    }
    else if (PyDict_GET_SIZE(fold_cache) < FOLDS_KEPT && PyDict_SetItem(fold_cache, key, folded) < 0) {
        status = -1;
    }
    if (status == 0 && into == spare) {
        spare->n = 0;
    }
    if (status == 0 && buf_reserve(into, n) == 0) {
        Py_ssize_t offset = into->n;
        for (Py_ssize_t i = 0; i < n; i++) {
            into->p[into->n++] = PyUnicode_READ_CHAR(folded, i);
        }
        if (into == &fold_pool) {
            fold_bmp[c] = (uint32_t)offset << 4 | (uint32_t)(n + 1);
        }
        *chars = into->p + offset;
        *len = n;
    }
    else {
        status = -1;
    }
    Py_DECREF(folded);
    Py_DECREF(key);
    return status;
}

/* ASCII letters (1) and the breaks between words that are not leetspeak (2): everything but digits, '@' and '$'.
   Filled when the module loads. */
static uint8_t PLAIN[128];

/* Leetspeak: the characters read as letters inside a word that mixes them with letters. */
static const char LEET[128] = {['0'] = 'o', ['1'] = 'i', ['3'] = 'e', ['4'] = 'a', ['5'] = 's',
                               ['7'] = 't', ['8'] = 'b', ['@'] = 'a', ['$'] = 's'};

static inline int
leet_word_char(U c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '@' || c == '$';
}

static inline int
letter(U c)
{
    return c >= 'a' && c <= 'z';
}

typedef struct {
    U *o;                  /* the words so far, " word word" */
    Py_ssize_t w;
    Py_ssize_t word_len;   /* characters of the word being read (before repeats collapse); 0 between words */
    Py_ssize_t word_start; /* where it starts in o */
    Py_ssize_t run_start;  /* where the run of single-letter words before it starts in o */
    Py_ssize_t run_count;
    /* The leetspeak span being read (letters, digits, '@', '$'): its last character (0 outside one), whether it
       reads as leetspeak (a leet character next to a letter), and its characters held back from its first leet
       character on while that is not known (digits, '@' and '$' only: a letter decides it). */
    U span_last;
    int span_leet;
    Buf held;
} Words;

/* Three or more single-letter words in a row ("p o r n") joined into one word, its repeats collapsed; the word
   after them (o[next, w)) moved down behind it. */
static void
join_run(Words *ws, Py_ssize_t run_end, Py_ssize_t next)
{
    if (ws->run_count >= 3) {
        U *o = ws->o, previous = ' ';
        Py_ssize_t k = ws->run_start;
        for (Py_ssize_t i = ws->run_start; i < run_end; i += 2) {
            if (o[i] != previous) {
                previous = o[k++] = o[i];
            }
        }
        if (next < ws->w) {
            o[k++] = ' ';
            memmove(o + k, o + next, (size_t)(ws->w - next) * sizeof(U));
            k += ws->w - next;
        }
        ws->w = k;
    }
    ws->run_count = 0;
}

static inline void
end_word(Words *ws)
{
    if (ws->word_len == 1) {
        if (ws->run_count++ == 0) {
            ws->run_start = ws->word_start;
        }
    }
    else if (ws->run_count) {
        join_run(ws, ws->word_start - 1, ws->word_start);
    }
    ws->word_len = 0;
}

/* One character after leetspeak: a letter or digit of a word (a repeat of the one before it dropped), or a
   break between words. */
static inline void
word_char(Words *ws, U c)
{
    if (!is_alnum(c)) {
        if (ws->word_len) {
            end_word(ws);
        }
        return;
    }
    if (!ws->word_len) {
        if (ws->w > 1) {
            ws->o[ws->w++] = ' ';
        }
        ws->word_start = ws->w;
        ws->o[ws->w++] = c;
    }
    else if (ws->o[ws->w - 1] != c) {
        ws->o[ws->w++] = c;
    }
    ws->word_len++;
}

static inline void
release_held(Words *ws)
{
    for (Py_ssize_t i = 0; i < ws->held.n; i++) {
        U c = ws->held.p[i];
        word_char(ws, ws->span_leet && LEET[c] ? (U)LEET[c] : c);
    }
    ws->held.n = 0;
}

/* One folded character. -1 on an error (no memory). */
static inline int
folded_char(Words *ws, U f)
{
    if (!leet_word_char(f)) {
        if (ws->span_last) {
            release_held(ws);
            ws->span_last = 0;
            ws->span_leet = 0;
        }
        word_char(ws, f);
        return 0;
    }
    U last = ws->span_last;
    ws->span_last = f;
    if (!ws->span_leet && last && ((LEET[f] && letter(last)) || (letter(f) && LEET[last]))) {
        ws->span_leet = 1;
        release_held(ws);
    }
    if (ws->span_leet) {
        word_char(ws, LEET[f] ? (U)LEET[f] : f);
    }
    else if (ws->held.n || LEET[f]) {
        if (buf_reserve(&ws->held, 1) < 0) {
            return -1;
        }
        ws->held.p[ws->held.n++] = f;
    }
    else {
        word_char(ws, f);
    }
    return 0;
}

/* Text without markup to words, " word word … ", in `out`: case, accents and letter variants folded, leetspeak
   read in the words that mix it with letters, everything but letters and digits a break between words, runs of
   single letters joined, repeated letters collapsed. */
static int
to_words(const U *s, Py_ssize_t n, Buf *out, Buf *held, Buf *spare)
{
    /* Each character gives at most one of the words' characters or spaces (a fold of several, one each), and the
       words have a space at each end: room for n + 2, and more as folds need it. */
    out->n = 0;
    if (buf_reserve(out, n + 2) < 0) {
        return -1;
    }
    held->n = 0;
    Words ws = {.o = out->p, .held = *held};
    ws.o[ws.w++] = ' ';
    int status = 0;
    for (Py_ssize_t i = 0; i < n && status == 0; i++) {
        U c = s[i];
        if (c < 128 && PLAIN[c] && !ws.held.n) {
            /* The common case, ASCII letters and breaks with nothing held back, in local variables: what
               folded_char, word_char and end_word do with them. */
            U *o = ws.o, last = ws.span_last;
            Py_ssize_t w = ws.w, len = ws.word_len, start = ws.word_start;
            int leet = ws.span_leet;
            while (i < n && (c = s[i]) < 128 && PLAIN[c]) {
                if (PLAIN[c] == 1) {
                    U f = c | 0x20;
                    if (!len) {
                        if (w > 1) {
                            o[w++] = ' ';
                        }
                        start = w;
                        o[w++] = f;
                        len = 1;
                        i++;
                    }
                    for (; i < n && (c = s[i]) < 128 && PLAIN[c] == 1; i++, len++) {
                        f = c | 0x20;
                        if (o[w - 1] != f) {
                            o[w++] = f;
                        }
                    }
                    last = o[w - 1];
                    continue;
                }
                if (len == 1) {
                    if (ws.run_count++ == 0) {
                        ws.run_start = start;
                    }
                }
                else if (len && ws.run_count) {
                    ws.w = w;
                    join_run(&ws, start - 1, start);
                    w = ws.w;
                }
                len = 0;
                last = 0;
                leet = 0;
                for (i++; i < n && (c = s[i]) < 128 && PLAIN[c] == 2; i++) {
                }
            }
            ws.w = w;
            ws.word_len = len;
            ws.word_start = start;
            ws.span_last = last;
            ws.span_leet = leet;
            i--;
            continue;
        }
        if (c < 128) {
            status = folded_char(&ws, (c >= 'A' && c <= 'Z') ? c + 32 : c);
            continue;
        }
        const U *chars;
        Py_ssize_t len;
        if (fold_of(c, &chars, &len, spare) < 0) {
            status = -1;
            break;
        }
        if (len > 1) {
            out->n = ws.w;
            if (buf_reserve(out, ws.held.n + len + (n - i) + 2) < 0) {
                status = -1;
                break;
            }
            ws.o = out->p;
        }
        for (Py_ssize_t k = 0; k < len && status == 0; k++) {
            status = folded_char(&ws, chars[k]);
        }
    }
    if (status == 0) {
        folded_char(&ws, ' '); /* ends the last span and word */
        if (ws.run_count) {
            join_run(&ws, ws.w, ws.w);
        }
        ws.o[ws.w++] = ' ';
        out->n = ws.w;
    }
    *held = ws.held;
    return status;
}

/* -- the module's functions ----------------------------------------------------------------------------------- */

/* Buffers kept from one call to the next (a page's worth of UCS-4 is too big to allocate fresh each time without
   the kernel zeroing its pages), unless they grew past a million characters (4 MB). */
static Buf scratch_text, scratch_words, scratch_held, scratch_spare;
static int scratch_busy;
#define SCRATCH_KEPT (1024 * 1024)

static void
trim(Buf *b)
{
    if (b->cap > SCRATCH_KEPT) {
        PyMem_Free(b->p);
        *b = (Buf){0};
    }
}

static int
ready(void)
{
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "gateway.content._scan is not configured: import gateway.content.normalise");
        return 0;
    }
    if (scratch_busy) {
        /* Only a fold function that normalises could get here. */
        PyErr_SetString(PyExc_RuntimeError, "gateway.content._scan called from within itself");
        return 0;
    }
    return 1;
}

/* The text's markup stripped into scratch_text; its length, or -1. */
static Py_ssize_t
stripped(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    scratch_text.n = 0;
    if (buf_reserve(&scratch_text, n + 1) < 0 || PyUnicode_AsUCS4(text, scratch_text.p, n + 1, 0) == NULL) {
        return -1;
    }
    return strip(scratch_text.p, text);
}

static PyObject *
strip_markup(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "strip_markup() wants a str, not %s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    scratch_busy = 1;
    Py_ssize_t n = stripped(text);
    PyObject *result = n < 0 ? NULL : PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, scratch_text.p, n);
    trim(&scratch_text);
    scratch_busy = 0;
    return result;
}

/* The text (a page when `markup`) in words in scratch_words; 0, or -1 on an error. The caller holds scratch_busy. */
static int
normalised(PyObject *text, int markup)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (markup) {
        n = stripped(text);
    }
    else {
        scratch_text.n = 0;
        if (buf_reserve(&scratch_text, n + 1) < 0 || PyUnicode_AsUCS4(text, scratch_text.p, n + 1, 0) == NULL) {
            n = -1;
        }
    }
    return n < 0 ? -1 : to_words(scratch_text.p, n, &scratch_words, &scratch_held, &scratch_spare);
}

static void
release_scratch(void)
{
    trim(&scratch_text);
    trim(&scratch_words);
    trim(&scratch_held);
    trim(&scratch_spare);
    scratch_busy = 0;
}

static PyObject *
normalise(PyObject *module, PyObject *args)
{
    PyObject *text;
    int markup;
    if (!PyArg_ParseTuple(args, "Up:normalise", &text, &markup) || !ready()) {
        return NULL;
    }
    scratch_busy = 1;
    PyObject *result = NULL;
    if (normalised(text, markup) == 0) {
        result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, scratch_words.p, scratch_words.n);
    }
    release_scratch();
    return result;
}

/* -- the automaton -------------------------------------------------------------------------------------------- */

/* Every pattern starts with a space (a word break), so a match starts only where a word does: the trie of the
   patterns is walked from each space of the text, as far as the text follows it. That finds every occurrence of
   every pattern, as an Aho-Corasick automaton would, without its failure links; a walk is as long as the longest
   pattern at most, and on ordinary text ends after a letter or two. */
#define FIRST_WORD_BITS 65536

typedef struct {
    PyObject_HEAD
    Py_ssize_t patterns;
    Py_ssize_t nodes;
    int32_t *first;   /* per node: its first edge */
    int32_t *count;   /* per node: its number of edges, sorted by character */
    int32_t *pattern; /* per node: the pattern that ends there, or -1 */
    U *edge_char;
    int32_t *edge_child;
    int32_t start; /* the node after the leading space, or -1 when there are no patterns */
    /* The first levels below it, where nearly every walk ends, are the nodes numbered below `shallow`, and their
       children are also in a table by ASCII character class: a row a node, a class a column (class 0 for the
       characters in no pattern), so a step there is one look-up. */
    int32_t shallow;
    int32_t *rows;
    int32_t classes;
    uint8_t class_of[128];
    /* Where a walk can start: at a word that may be a one-word pattern, or at two words that may begin a longer
       one; each word known by a hash of its length and first three characters, a bit a word (or pair) in these
       filters. Most words of ordinary text are in neither, and cost two hashes, not a walk. A filter is all ones
       when a pattern does not end its first (or second) word with a space: a text word could then only start it. */
    uint64_t single_words[FIRST_WORD_BITS / 64];
    uint64_t word_pairs[FIRST_WORD_BITS / 64];
} Automaton;

/* Nodes this deep or less (the root 0, the leading space 1, then the first letters) have rows. */
#define ROW_DEPTH 3

static void
automaton_dealloc(Automaton *self)
{
    PyMem_Free(self->first);
    PyMem_Free(self->count);
    PyMem_Free(self->pattern);
    PyMem_Free(self->edge_char);
    PyMem_Free(self->edge_child);
    PyMem_Free(self->rows);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline int32_t
sparse_child(const Automaton *a, int32_t node, U c)
{
    const U *chars = a->edge_char + a->first[node];
    int32_t count = a->count[node], lo = 0, hi = count;
    while (hi - lo > 8) {
        int32_t mid = (lo + hi) / 2;
        if (chars[mid] < c) {
            lo = mid + 1;
        }
        else {
            hi = mid; /* chars[hi] may be c itself */
        }
    }
    for (; lo < count && chars[lo] <= c; lo++) {
        if (chars[lo] == c) {
            return a->edge_child[a->first[node] + lo];
        }
    }
    return -1;
}

static inline int32_t
child(const Automaton *a, int32_t node, U c)
{
    if (c < 128 && node < a->shallow) {
        return a->rows[(size_t)node * (size_t)a->classes + a->class_of[c]];
    }
    return sparse_child(a, node, c);
}

/* A word known by its length and first three characters (those it has). */
static inline uint64_t
word_key(const U *word, Py_ssize_t len)
{
    uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15u;
    h ^= (uint64_t)(len > 0 ? word[0] : 0) * 0xC2B2AE3D27D4EB4Fu;
    h ^= (uint64_t)(len > 1 ? word[1] : 0) * 0x165667B19E3779F9u;
    h ^= (uint64_t)(len > 2 ? word[2] : 0) * 0x27D4EB2F165667C5u;
    return h;
}

static inline uint32_t
key_bit(uint64_t key)
{
    return (uint32_t)(key >> 48) & (FIRST_WORD_BITS - 1);
}

static inline uint32_t
pair_bit(uint64_t first, uint64_t second)
{
    return key_bit(first ^ (second * 0xD6E8FEB86659FD93u + 0x632BE59BD9B4E019u));
}

static inline int
has_bit(const uint64_t *filter, uint32_t bit)
{
    return (filter[bit >> 6] >> (bit & 63)) & 1;
}

static inline void
set_bit(uint64_t *filter, uint32_t bit)
{
    filter[bit >> 6] |= (uint64_t)1 << (bit & 63);
}

typedef struct {
    U *chars;
    Py_ssize_t len, index;
} Pattern;

static int
compare_patterns(const void *a, const void *b)
{
    const Pattern *x = a, *y = b;
    Py_ssize_t len = x->len < y->len ? x->len : y->len;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (x->chars[i] != y->chars[i]) {
            return x->chars[i] < y->chars[i] ? -1 : 1;
        }
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

static int
automaton_init(Automaton *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"patterns", NULL};
    PyObject *given;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Automaton", keywords, &given)) {
        return -1;
    }
    if (self->first != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "an Automaton is built once");
        return -1;
    }
    PyObject *list = PySequence_Fast(given, "patterns must be a sequence of str");
    if (list == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(list), total = 1;
    Pattern *patterns = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Pattern));
    int status = -1;
    if (patterns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(list, i);
        if (!PyUnicode_Check(item) || PyUnicode_GET_LENGTH(item) < 2 || PyUnicode_READ_CHAR(item, 0) != ' ') {
            PyErr_Format(PyExc_ValueError, "pattern %R: expected a str of words that starts with a space", item);
            goto done;
        }
        patterns[i].index = i;
        patterns[i].chars = PyUnicode_AsUCS4Copy(item);
        if (patterns[i].chars == NULL) {
            goto done;
        }
        patterns[i].len = PyUnicode_GET_LENGTH(item);
        total += patterns[i].len;
    }
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many patterns");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const U *chars = patterns[i].chars;
        Py_ssize_t len = patterns[i].len, first_end = 1, second_end;
        while (first_end < len && chars[first_end] != ' ') {
            first_end++;
        }
        if (first_end >= len - 1) { /* one word, ended by a space or not */
            if (first_end == len) {
                memset(self->single_words, 0xFF, sizeof(self->single_words));
            }
            set_bit(self->single_words, key_bit(word_key(chars + 1, first_end - 1)));
            continue;
        }
        for (second_end = first_end + 1; second_end < len && chars[second_end] != ' '; second_end++) {
        }
        if (second_end == len) {
            memset(self->word_pairs, 0xFF, sizeof(self->word_pairs));
        }
        set_bit(self->word_pairs, pair_bit(word_key(chars + 1, first_end - 1),
                                           word_key(chars + first_end + 1, second_end - first_end - 1)));
    }
    qsort(patterns, (size_t)count, sizeof(Pattern), compare_patterns);
    /* The trie, built from the sorted patterns: each node's parent and character, so its edges come out sorted. */
    int32_t *parent = PyMem_Malloc((size_t)total * sizeof(int32_t));
    U *via = PyMem_Malloc((size_t)total * sizeof(U));
    int32_t *path = PyMem_Malloc((size_t)total * sizeof(int32_t));
    self->pattern = PyMem_Malloc((size_t)total * sizeof(int32_t));
    self->first = PyMem_Calloc((size_t)total + 1, sizeof(int32_t));
    self->count = PyMem_Calloc((size_t)total, sizeof(int32_t));
    self->edge_char = PyMem_Malloc((size_t)total * sizeof(U));
    self->edge_child = PyMem_Malloc((size_t)total * sizeof(int32_t));
    if (!parent || !via || !path || !self->pattern || !self->first || !self->count || !self->edge_char
        || !self->edge_child) {
        PyErr_NoMemory();
        goto free_build;
    }
    int32_t nodes = 1;
    parent[0] = -1;
    self->pattern[0] = -1;
    path[0] = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t shared = 0;
        if (i) {
            const Pattern *before = &patterns[i - 1];
            while (shared < before->len && shared < patterns[i].len
                   && before->chars[shared] == patterns[i].chars[shared]) {
                shared++;
            }
        }
        for (Py_ssize_t k = shared; k < patterns[i].len; k++) {
            parent[nodes] = path[k];
            via[nodes] = patterns[i].chars[k];
            self->pattern[nodes] = -1;
            path[k + 1] = nodes++;
        }
        self->pattern[path[patterns[i].len]] = (int32_t)patterns[i].index;
    }
    /* Numbered again, the shallow nodes first; their depth from the parents, which come before their children. */
    int32_t *depth = path, *number = PyMem_Malloc((size_t)nodes * sizeof(int32_t)),
            *found = PyMem_Malloc((size_t)nodes * sizeof(int32_t));
    if (number == NULL || found == NULL) {
        PyMem_Free(number);
        PyMem_Free(found);
        PyErr_NoMemory();
        goto free_build;
    }
    depth[0] = 0;
    for (int32_t node = 1; node < nodes; node++) {
        depth[node] = depth[parent[node]] + 1;
    }
    int32_t next = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t node = 0; node < nodes; node++) {
            if ((depth[node] <= ROW_DEPTH) == !pass) {
                number[node] = next++;
            }
        }
        if (!pass) {
            self->shallow = next;
        }
    }
    memcpy(found, self->pattern, (size_t)nodes * sizeof(int32_t));
    for (int32_t node = 0; node < nodes; node++) {
        self->pattern[number[node]] = found[node];
    }
    /* Edges: each node's, in the order they were made, which is by character. */
    for (int32_t node = 1; node < nodes; node++) {
        self->count[number[parent[node]]]++;
    }
    for (int32_t node = 0; node < nodes; node++) {
        self->first[node + 1] = self->first[node] + self->count[node];
    }
    int32_t *filled = found; /* reused: edges placed so far per node */
    memset(filled, 0, (size_t)nodes * sizeof(int32_t));
    for (int32_t node = 1; node < nodes; node++) {
        int32_t from = number[parent[node]], edge = self->first[from] + filled[from]++;
        self->edge_char[edge] = via[node];
        self->edge_child[edge] = number[node];
    }
    PyMem_Free(number);
    PyMem_Free(found);
    self->nodes = nodes;
    self->patterns = count;
    for (int32_t node = 1; node < nodes; node++) {
        if (via[node] < 128 && !self->class_of[via[node]]) {
            self->class_of[via[node]] = (uint8_t)++self->classes;
        }
    }
    self->classes++;
    self->rows = PyMem_Malloc((size_t)self->shallow * (size_t)self->classes * sizeof(int32_t));
    if (self->rows == NULL) {
        PyErr_NoMemory();
        goto free_build;
    }
    for (int32_t node = 0; node < self->shallow; node++) {
        int32_t *cells = self->rows + (size_t)node * (size_t)self->classes;
        for (int32_t k = 0; k < self->classes; k++) {
            cells[k] = -1;
        }
        for (int32_t e = self->first[node]; e < self->first[node] + self->count[node]; e++) {
            if (self->edge_char[e] < 128) {
                cells[self->class_of[self->edge_char[e]]] = self->edge_child[e];
            }
        }
    }
    self->start = count ? child(self, 0, ' ') : -1;
    status = 0;
free_build:
    PyMem_Free(parent);
    PyMem_Free(via);
    PyMem_Free(path);
done:
    if (patterns != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyMem_Free(patterns[i].chars);
        }
        PyMem_Free(patterns);
    }
    Py_DECREF(list);
    return status;
}

static int
add_hit(PyObject *hits, Py_ssize_t start, Py_ssize_t end, int32_t pattern)
{
    PyObject *hit = PyTuple_New(3), *items[3] = {PyLong_FromSsize_t(start), PyLong_FromSsize_t(end),
                                                 PyLong_FromLong(pattern)};
    if (hit == NULL || !items[0] || !items[1] || !items[2]) {
        Py_XDECREF(hit);
        Py_XDECREF(items[0]);
        Py_XDECREF(items[1]);
        Py_XDECREF(items[2]);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        PyTuple_SET_ITEM(hit, i, items[i]);
    }
    int status = PyList_Append(hits, hit);
    Py_DECREF(hit);
    return status;
}

/* Every pattern found starting at the space t[at], when the word after it (first_key) may be a one-word pattern or
   it and the next word (second_key) may begin a longer one. */
#define WALK_FROM(at, first_key, second_key)                                                                  \
    if (has_bit(a->single_words, key_bit(first_key)) || has_bit(a->word_pairs, pair_bit(first_key, second_key))) { \
        int32_t node = child(a, a->start, t[(at) + 1]);                                                       \
        for (Py_ssize_t j = (at) + 1; node >= 0; node = ++j < n ? child(a, node, t[j]) : -1) {                \
            if (a->pattern[node] >= 0 && add_hit(hits, (at), j + 1, a->pattern[node]) < 0) {                  \
                return -1;                                                                                    \
            }                                                                                                 \
        }                                                                                                     \
    }

/* At each space t[after]: the word that ends there is hashed once, and the walk from the space two back tried. */
#define AT_SPACE(after)                                                                                       \
    {                                                                                                         \
        uint64_t key = next >= 0 ? word_key(word_chars(t, next + 1, (after)), (after) - next - 1) : 0;        \
        if (at >= 0) {                                                                                        \
            WALK_FROM(at, at_key, key)                                                                        \
        }                                                                                                     \
        at = next;                                                                                            \
        at_key = key;                                                                                         \
        next = (after);                                                                                       \
    }

/* After the last space: the walks from the last two spaces (the last word runs to the end of text that does not
   end in a space; the word after it is empty). */
#define LAST_WORDS()                                                                                          \
    {                                                                                                         \
        uint64_t key = next >= 0 ? word_key(word_chars(t, next + 1, n), n - next - 1) : 0;                    \
        if (at >= 0) {                                                                                        \
            WALK_FROM(at, at_key, key)                                                                        \
        }                                                                                                     \
        if (next >= 0 && next + 1 < n) {                                                                      \
            WALK_FROM(next, key, word_key(NULL, 0))                                                           \
        }                                                                                                     \
    }

#define WALK(NAME, TYPE)                                                                                      \
    static inline const U *word_chars_##NAME(const TYPE *t, Py_ssize_t start, Py_ssize_t end, U *copy)       \
    {                                                                                                         \
        for (Py_ssize_t k = 0; k < 3 && start + k < end; k++) {                                               \
            copy[k] = t[start + k];                                                                           \
        }                                                                                                     \
        return copy;                                                                                          \
    }                                                                                                         \
    static int NAME(const Automaton *a, const TYPE *t, Py_ssize_t n, PyObject *hits)                          \
    {                                                                                                         \
        U copy[3];                                                                                            \
        Py_ssize_t at = -1, next = -1;                                                                        \
        uint64_t at_key = 0;                                                                                  \
        for (Py_ssize_t after = 0; after < n; after++) {                                                      \
            if (t[after] == ' ') {                                                                            \
                AT_SPACE(after)                                                                               \
            }                                                                                                 \
        }                                                                                                     \
        LAST_WORDS()                                                                                          \
        return 0;                                                                                             \
    }

#define word_chars(t, start, end) word_chars_walk1(t, start, end, copy)
WALK(walk1, Py_UCS1)
#undef word_chars
#define word_chars(t, start, end) word_chars_walk2(t, start, end, copy)
WALK(walk2, Py_UCS2)
#undef word_chars
#define word_chars(t, start, end) word_chars_walk_ucs4(t, start, end, copy)
WALK(walk_ucs4, Py_UCS4)
#undef word_chars

/* Words just made (scan_page): the spaces found 16 characters at a time, so that only the walks themselves branch
   on the text. */
static int
walk4(const Automaton *a, const U *t, Py_ssize_t n, PyObject *hits)
{
#define word_chars(t, start, end) ((t) + (start))
    Py_ssize_t at = -1, next = -1, base = 0;
    uint64_t at_key = 0;
#ifdef __SSE2__
    __m128i space = _mm_set1_epi32(' ');
    for (; base + 16 <= n; base += 16) {
        const __m128i *v = (const __m128i *)(t + base);
        unsigned mask = (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128(v), space)))
                        | (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128(v + 1), space))) << 4
                        | (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128(v + 2), space))) << 8
                        | (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128(v + 3), space))) << 12;
        for (; mask; mask &= mask - 1) {
            AT_SPACE(base + __builtin_ctz(mask))
        }
    }
#endif
    for (Py_ssize_t after = base; after < n; after++) {
        if (t[after] == ' ') {
            AT_SPACE(after)
        }
    }
    LAST_WORDS()
    return 0;
#undef word_chars
}

static PyObject *
automaton_hits(Automaton *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "hits() wants a str, not %s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    PyObject *hits = PyList_New(0);
    if (hits == NULL || self->start < 0) {
        return hits;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const void *data = PyUnicode_DATA(text);
    int status;
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        status = walk1(self, data, n, hits);
        break;
    case PyUnicode_2BYTE_KIND:
        status = walk2(self, data, n, hits);
        break;
    default:
        status = walk_ucs4(self, data, n, hits);
    }
    if (status < 0) {
        Py_DECREF(hits);
        return NULL;
    }
    return hits;
}

/* A page normalised and matched in one go, its words never made a str when nothing matched (most pages). */
static PyObject *
automaton_scan_page(Automaton *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "scan_page() wants a str, not %s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    scratch_busy = 1;
    PyObject *hits = NULL, *words = NULL, *result = NULL;
    if (normalised(text, 1) == 0 && (hits = PyList_New(0)) != NULL
        && (self->start < 0 || walk4(self, scratch_words.p, scratch_words.n, hits) == 0)) {
        words = PyList_GET_SIZE(hits)
                    ? PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, scratch_words.p, scratch_words.n)
                    : Py_NewRef(Py_None);
        if (words != NULL) {
            result = PyTuple_Pack(2, words, hits);
        }
    }
    Py_XDECREF(words);
    Py_XDECREF(hits);
    release_scratch();
    return result;
}

static PyObject *
automaton_len(Automaton *self, void *closure)
{
    return PyLong_FromSsize_t(self->patterns);
}

static PyMethodDef automaton_methods[] = {
    {"hits", (PyCFunction)automaton_hits, METH_O,
     "hits(text) -> [(start, end, pattern index)]: every occurrence of every pattern in normalised text, by start"},
    {"scan_page", (PyCFunction)automaton_scan_page, METH_O,
     "scan_page(page) -> (words, hits): the page normalised and its hits, as normalise(page, True) and hits(); "
     "words is None when there are no hits"},
    {NULL}};

static PyGetSetDef automaton_getset[] = {{"patterns", (getter)automaton_len, NULL, "how many patterns", NULL},
                                         {NULL}};

static PyTypeObject AutomatonType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.content._scan.Automaton",
    .tp_basicsize = sizeof(Automaton),
    .tp_dealloc = (destructor)automaton_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Automaton(patterns): finds normalised phrases (each padded with spaces) in normalised text",
    .tp_methods = automaton_methods,
    .tp_getset = automaton_getset,
    .tp_init = (initproc)automaton_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(fold, html5, charrefs): the fold of a non-ASCII character (int -> str), html.entities.html5, and "
     "the numeric character references html.unescape replaces (int -> str of 0 or 1 characters)"},
    {"strip_markup", strip_markup, METH_O, "strip_markup(text) -> the text without markup, entities decoded"},
    {"normalise", normalise, METH_VARARGS,
     "normalise(text, markup) -> ' word word … ': markup stripped first when markup is true"},
    {NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gateway.content._scan",
                                    "The content normaliser and phrase matcher (see _scan.c).", -1, methods};

PyMODINIT_FUNC
PyInit__scan(void)
{
    for (U c = 0; c < 128; c++) {
        PLAIN[c] = ascii_alpha(c) ? 1 : (is_digit(c) || c == '@' || c == '$') ? 0 : 2;
    }
    if (PyType_Ready(&AutomatonType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Automaton", (PyObject *)&AutomatonType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
