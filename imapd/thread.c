#include "imapd/thread.h"

#include <stdlib.h>
#include <string.h>

#include "imapd/envelope.h"
#include "imapd/sort.h"
#include "lib/arena.h"
#include "lib/errors.h"
#include "lib/util.h"

#define NONE SIZE_MAX
/* Node 0 is the root of RFC 5256 step 2. */
#define ROOT 0
/* Ancestor steps all loop checks of one command may take before each
 * check is cut to WALK_MIN steps. */
#define WALK_BUDGET 20000000u
#define WALK_MIN 64
/* Comment nesting inside a msg-id before it is taken as garbage. */
#define ID_MAX_COMMENT_DEPTH 32
/* What a distinct ID costs beyond its bytes (table entry at half load,
 * node, sorting scratch), and a reference, for THREAD_MAX_REFS_MEMORY. */
#define ID_COST 128
#define REF_COST 8

int thread_parse_algorithm(struct kstr name, enum thread_alg *alg_r)
{
	if (kstr_eq_ci(name, "ORDEREDSUBJECT")) {
		*alg_r = THREAD_ORDEREDSUBJECT;
		return 0;
	}
	if (kstr_eq_ci(name, "REFERENCES")) {
		*alg_r = THREAD_REFERENCES;
		return 0;
	}
	return KURA_EINVAL;
}

/* Bytes [off, off+len) of a pool; len 0: none (no valid ID, or an empty
 * subject). Offsets, because pools move while they grow. */
struct idref {
	size_t off, len;
};

struct tmsg {
	uint32_t uid, num;
	int64_t date;
	struct idref subj;	/* collation key of the base subject */
	size_t subj_id;		/* NONE: empty base subject */
	bool is_reply;
	struct idref irt;	/* first In-Reply-To ID, in irtpool */
	size_t ref0, nrefs;	/* its references: refs[ref0, ref0+nrefs) */
	size_t node;
};

struct tnode {
	size_t parent, first, last, next, prev;
	size_t msg;		/* index in msgs; NONE: dummy */
};

struct skey {
	int64_t date;
	size_t idx;
	size_t node;
};

/* Interned IDs: open addressing over a keyed hash, so that crafted IDs
 * cannot pile up in one chain (the result does not depend on the key). */
struct ident {
	uint64_t hash;
	size_t node;		/* NONE: free slot */
	struct idref id;	/* in idpool */
};

struct tctx {
	struct tmsg *msgs;
	size_t n;
	struct buf subjpool, idpool, irtpool;
	size_t *refs;		/* container node of each reference */
	size_t nrefs, refs_cap;
	uint64_t mem;		/* for THREAD_MAX_REFS_MEMORY */
	struct ident *tab;
	size_t tab_cap, tab_count;
	uint64_t seed;
	struct tnode *nodes;
	size_t nnodes, nodes_cap;
	uint64_t walk_budget;
	struct skey *skeys;
	size_t skeys_cap;
	/* the last THREAD_MAX_REFS IDs of one References value */
	uint8_t (*ring)[THREAD_MAX_ID];
	size_t ring_len[THREAD_MAX_REFS];
	uint8_t last_out;	/* last byte written to out */
};

static struct kstr pool_view(const struct buf *pool, struct idref r)
{
	if (r.len == 0)
		return kstr_make("", 0);
	return kstr_make(pool->data + r.off, r.len);
}

static int cmp_bytes(struct kstr a, struct kstr b)
{
	size_t l = KURA_MIN(a.len, b.len);
	int r = l > 0 ? memcmp(a.p, b.p, l) : 0;

	if (r != 0)
		return r < 0 ? -1 : 1;
	return a.len < b.len ? -1 : a.len > b.len;
}

/* ---- Message IDs ---- */

/* The next valid msg-id in v from *pos, normalised into id[0..*len_r)
 * (id holds THREAD_MAX_ID bytes); false when there is none. Every failed
 * attempt resumes where it stopped, and a quote or comment left open at
 * the end ends the search, so a value is scanned in linear time whatever
 * it holds. */
static bool next_msgid(struct kstr v, size_t *pos, uint8_t *id,
		       size_t *len_r)
{
	size_t i = *pos;

	while (i < v.len) {
		const uint8_t *lt = memchr(v.p + i, '<', v.len - i);
		bool too_long = false, closed = false;
		size_t at = NONE, n = 0;

		if (lt == NULL)
			break;
		i = (size_t)(lt - v.p) + 1;
		while (i < v.len && !closed) {
			uint8_t c = v.p[i];
			if (c == '>') {
				closed = true;
				i++;
			} else if (c == '<') {
				break;
			} else if (c == ' ' || c == '\t' || c == '\r' ||
				   c == '\n') {
				i++;
			} else if (c == '(') {
				unsigned depth = 1;
				i++;
				while (i < v.len && depth > 0 &&
				       depth <= ID_MAX_COMMENT_DEPTH) {
					if (v.p[i] == '\\')
						i++;
					else if (v.p[i] == '(')
						depth++;
					else if (v.p[i] == ')')
						depth--;
					i++;
				}
				if (depth > ID_MAX_COMMENT_DEPTH) {
					too_long = true;
				} else if (depth > 0) {
					*pos = v.len;
					return false;
				}
			} else if (c == '"') {
				i++;
				while (i < v.len && v.p[i] != '"') {
					if (v.p[i] == '\\' && i + 1 < v.len)
						i++;
					if (n < THREAD_MAX_ID)
						id[n++] = v.p[i];
					else
						too_long = true;
					i++;
				}
				if (i >= v.len) {
					*pos = v.len;
					return false;
				}
				i++;
			} else {
				if (c == '@' && at == NONE)
					at = n;
				if (n < THREAD_MAX_ID)
					id[n++] = c;
				else
					too_long = true;
				i++;
			}
		}
		if (!closed) {
			if (i >= v.len)
				break;
			continue;	/* at the '<' that broke this one */
		}
		if (!too_long && at != NONE && at > 0 && n > at + 1) {
			*pos = i;
			*len_r = n;
			return true;
		}
	}
	*pos = v.len;
	return false;
}

/* ---- Nodes ---- */

static size_t node_new(struct tctx *t, size_t msg)
{
	if (t->nnodes == t->nodes_cap)
		xgrow((void **)&t->nodes, &t->nodes_cap, t->nnodes + 1,
		      sizeof(*t->nodes));
	struct tnode *x = &t->nodes[t->nnodes];
	x->parent = x->first = x->last = x->next = x->prev = NONE;
	x->msg = msg;
	return t->nnodes++;
}

static bool is_dummy(const struct tctx *t, size_t x)
{
	return t->nodes[x].msg == NONE;
}

static void node_unlink(struct tctx *t, size_t x)
{
	struct tnode *n = &t->nodes[x];

	if (n->parent == NONE)
		return;
	struct tnode *p = &t->nodes[n->parent];
	if (n->prev != NONE)
		t->nodes[n->prev].next = n->next;
	else
		p->first = n->next;
	if (n->next != NONE)
		t->nodes[n->next].prev = n->prev;
	else
		p->last = n->prev;
	n->parent = n->next = n->prev = NONE;
}

static void node_append(struct tctx *t, size_t p, size_t x)
{
	struct tnode *n = &t->nodes[x], *pn = &t->nodes[p];

	n->parent = p;
	n->next = NONE;
	n->prev = pn->last;
	if (pn->last != NONE)
		t->nodes[pn->last].next = x;
	else
		pn->first = x;
	pn->last = x;
}

/* Keyed hash of an ID; each step is a bijection of the state, so two
 * different IDs collide only for particular keys, which a sender cannot
 * know. */
static uint64_t id_hash(uint64_t seed, const uint8_t *p, size_t len)
{
	uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ull);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		p += 8;
		len -= 8;
	}
	w = 0;
	if (len > 0)
		memcpy(&w, p, len);
	h = (h ^ w) * 0x94d049bb133111ebull;
	h ^= h >> 29;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

static void tab_grow(struct tctx *t)
{
	size_t cap = t->tab_cap == 0 ? 1024 : t->tab_cap * 2;
	struct ident *tab = xmalloc(cap * sizeof(*tab));

	for (size_t i = 0; i < cap; i++)
		tab[i].node = NONE;
	for (size_t i = 0; i < t->tab_cap; i++) {
		if (t->tab[i].node == NONE)
			continue;
		size_t j = t->tab[i].hash & (cap - 1);
		while (tab[j].node != NONE)
			j = (j + 1) & (cap - 1);
		tab[j] = t->tab[i];
	}
	free(t->tab);
	t->tab = tab;
	t->tab_cap = cap;
}

/* The container node of an ID, created (a dummy) on first sight. p must
 * not point into idpool. */
static size_t intern(struct tctx *t, const uint8_t *p, size_t len)
{
	uint64_t h = id_hash(t->seed, p, len);

	if ((t->tab_count + 1) * 2 > t->tab_cap)
		tab_grow(t);
	size_t i = h & (t->tab_cap - 1);
	while (t->tab[i].node != NONE) {
		const struct ident *e = &t->tab[i];
		if (e->hash == h && e->id.len == len &&
		    memcmp(t->idpool.data + e->id.off, p, len) == 0)
			return e->node;
		i = (i + 1) & (t->tab_cap - 1);
	}
	struct ident *e = &t->tab[i];
	e->hash = h;
	e->id = (struct idref){ t->idpool.len, len };
	buf_append(&t->idpool, p, len);
	e->node = node_new(t, NONE);
	t->tab_count++;
	return e->node;
}

static void refs_push(struct tctx *t, size_t node)
{
	if (t->nrefs == t->refs_cap)
		xgrow((void **)&t->refs, &t->refs_cap, t->nrefs + 1,
		      sizeof(*t->refs));
	t->refs[t->nrefs++] = node;
}

/* Message i's references: the IDs of its References value, else the
 * first ID of In-Reply-To (RFC 5256 3). */
static void collect_refs(struct tctx *t, size_t i, struct kstr v)
{
	struct tmsg *m = &t->msgs[i];
	size_t pos = 0, count = 0, len;
	size_t pool0 = t->idpool.len, ids0 = t->tab_count;

	m->ref0 = t->nrefs;
	m->nrefs = 0;
	if (v.p != NULL && v.len > THREAD_MAX_REFS_BYTES) {
		v.p += v.len - THREAD_MAX_REFS_BYTES;
		v.len = THREAD_MAX_REFS_BYTES;
	}
	while (v.p != NULL &&
	       next_msgid(v, &pos, t->ring[count % THREAD_MAX_REFS], &len)) {
		t->ring_len[count % THREAD_MAX_REFS] = len;
		count++;
	}
	if (count > 0) {
		size_t keep = KURA_MIN(count, (size_t)THREAD_MAX_REFS);
		if (t->mem > THREAD_MAX_REFS_MEMORY)
			keep = 1;
		for (size_t k = count - keep; k < count; k++) {
			size_t r = k % THREAD_MAX_REFS;
			refs_push(t, intern(t, t->ring[r], t->ring_len[r]));
		}
		m->nrefs = keep;
	} else if (m->irt.len > 0) {
		refs_push(t, intern(t, t->irtpool.data + m->irt.off,
				    m->irt.len));
		m->nrefs = 1;
	}
	/* Only what references add counts: message IDs cost in proportion
	 * to the mailbox, like the rest of the index. */
	t->mem += (t->idpool.len - pool0) + (t->tab_count - ids0) * ID_COST +
		  m->nrefs * REF_COST;
}

/* Whether making p the parent of c would close a loop: p is c or a
 * descendant of c. A check that runs out of steps says yes, so a link
 * is never made unchecked. */
static bool would_loop(struct tctx *t, size_t p, size_t c)
{
	uint64_t limit = THREAD_MAX_WALK, steps = 0;

	if (p == c)
		return true;
	if (t->nodes[c].first == NONE)
		return false;
	if (t->walk_budget < limit)
		limit = KURA_MAX(t->walk_budget, (uint64_t)WALK_MIN);
	for (size_t x = p; x != NONE; x = t->nodes[x].parent) {
		if (x == c || steps++ >= limit) {
			t->walk_budget -= KURA_MIN(t->walk_budget, steps);
			return true;
		}
	}
	t->walk_budget -= KURA_MIN(t->walk_budget, steps);
	return false;
}

/* All nodes under ROOT (ROOT first), parents before children, without
 * recursion. */
static size_t preorder(const struct tctx *t, size_t *order)
{
	size_t k = 0, x = ROOT;

	for (;;) {
		order[k++] = x;
		if (t->nodes[x].first != NONE) {
			x = t->nodes[x].first;
			continue;
		}
		while (x != ROOT && t->nodes[x].next == NONE)
			x = t->nodes[x].parent;
		if (x == ROOT)
			return k;
		x = t->nodes[x].next;
	}
}

/* Sort key of a node: its message's sent date and sequence position; a
 * dummy's is that of its first child. */
static struct skey node_key(const struct tctx *t, size_t x)
{
	size_t y = x;

	while (is_dummy(t, y) && t->nodes[y].first != NONE)
		y = t->nodes[y].first;
	if (is_dummy(t, y))
		return (struct skey){ INT64_MAX, NONE, x };
	size_t i = t->nodes[y].msg;
	return (struct skey){ t->msgs[i].date, i, x };
}

static int cmp_skey(const void *pa, const void *pb)
{
	const struct skey *a = pa, *b = pb;

	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Sorts the children of p by sent date (RFC 5256 2.2). */
static void sort_children(struct tctx *t, size_t p)
{
	size_t k = 0;

	if (t->nodes[p].first == t->nodes[p].last)
		return;
	for (size_t x = t->nodes[p].first; x != NONE; x = t->nodes[x].next) {
		if (k == t->skeys_cap)
			xgrow((void **)&t->skeys, &t->skeys_cap, k + 1,
			      sizeof(*t->skeys));
		t->skeys[k++] = node_key(t, x);
	}
	qsort(t->skeys, k, sizeof(*t->skeys), cmp_skey);
	t->nodes[p].first = t->nodes[p].last = NONE;
	for (size_t j = 0; j < k; j++)
		node_append(t, p, t->skeys[j].node);
}

/* ---- Output ---- */

static bool out_byte(struct tctx *t, struct buf *out, uint8_t c)
{
	bool digit = t->last_out >= '0' && t->last_out <= '9';

	if (c == '(' && digit && !buf_append(out, " ", 1))
		return false;
	t->last_out = c;
	return buf_append(out, &c, 1);
}

static bool out_num(struct tctx *t, struct buf *out, uint32_t v)
{
	if (t->last_out >= '0' && t->last_out <= '9' &&
	    !buf_append(out, " ", 1))
		return false;
	t->last_out = '0';
	return buf_printf(out, "%u", v);
}

/* A node is written inside its own parentheses when it has siblings
 * (RFC 5256 thread-nested); a top-level thread always is. */
static bool is_wrapped(const struct tctx *t, size_t x)
{
	size_t p = t->nodes[x].parent;

	return p == ROOT || t->nodes[p].first != t->nodes[p].last;
}

static bool write_node_open(struct tctx *t, struct buf *out, size_t x)
{
	if (is_wrapped(t, x) && !out_byte(t, out, '('))
		return false;
	if (!is_dummy(t, x) &&
	    !out_num(t, out, t->msgs[t->nodes[x].msg].num))
		return false;
	return true;
}

static int write_threads(struct tctx *t, struct buf *out)
{
	size_t x = t->nodes[ROOT].first;

	t->last_out = 0;
	while (x != NONE) {
		if (!write_node_open(t, out, x))
			return KURA_ETOOBIG;
		if (t->nodes[x].first != NONE) {
			x = t->nodes[x].first;
			continue;
		}
		/* Close x and every ancestor it was the last child of. */
		for (;;) {
			if (is_wrapped(t, x) && !out_byte(t, out, ')'))
				return KURA_ETOOBIG;
			if (t->nodes[x].next != NONE) {
				x = t->nodes[x].next;
				break;
			}
			x = t->nodes[x].parent;
			if (x == ROOT) {
				x = NONE;
				break;
			}
		}
	}
	return 0;
}

/* ---- Algorithms ---- */

static int cmp_subj(const void *pa, const void *pb, void *pctx)
{
	const struct tctx *t = pctx;
	const struct tmsg *a = &t->msgs[*(const size_t *)pa];
	const struct tmsg *b = &t->msgs[*(const size_t *)pb];

	return cmp_bytes(pool_view(&t->subjpool, a->subj),
			 pool_view(&t->subjpool, b->subj));
}

static int cmp_subj_date(const void *pa, const void *pb, void *pctx)
{
	const struct tctx *t = pctx;
	size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
	int r = cmp_subj(pa, pb, pctx);

	if (r != 0)
		return r;
	if (t->msgs[ia].date != t->msgs[ib].date)
		return t->msgs[ia].date < t->msgs[ib].date ? -1 : 1;
	return ia < ib ? -1 : ia > ib;
}

static void ordered_subject(struct tctx *t)
{
	size_t *perm = xmalloc(t->n * sizeof(*perm));
	size_t head = NONE;

	for (size_t i = 0; i < t->n; i++) {
		perm[i] = i;
		t->msgs[i].node = node_new(t, i);
	}
	qsort_r(perm, t->n, sizeof(*perm), cmp_subj_date, t);
	for (size_t k = 0; k < t->n; k++) {
		size_t i = perm[k];
		if (k == 0 || cmp_subj(&perm[k - 1], &perm[k], t) != 0) {
			head = t->msgs[i].node;
			node_append(t, ROOT, head);
		} else {
			node_append(t, head, t->msgs[i].node);
		}
	}
	sort_children(t, ROOT);
	free(perm);
}

/* Numbers equal subjects (by collation key) 0, 1, ...; NONE for an
 * empty one. Returns how many there are. */
static size_t number_subjects(struct tctx *t)
{
	size_t *perm = xmalloc((t->n + 1) * sizeof(*perm));
	size_t k = 0, nsubj = 0;

	for (size_t i = 0; i < t->n; i++) {
		t->msgs[i].subj_id = NONE;
		if (t->msgs[i].subj.len > 0)
			perm[k++] = i;
	}
	qsort_r(perm, k, sizeof(*perm), cmp_subj, t);
	for (size_t j = 0; j < k; j++) {
		if (j > 0 && cmp_subj(&perm[j - 1], &perm[j], t) != 0)
			nsubj++;
		t->msgs[perm[j]].subj_id = nsubj;
	}
	free(perm);
	return k > 0 ? nsubj + 1 : 0;
}

/* Step 1: parent/child links from the references. */
static void link_references(struct tctx *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct tmsg *m = &t->msgs[i];
		size_t cur = m->node, prev = NONE;

		for (size_t j = 0; j < m->nrefs; j++) {
			size_t r = t->refs[m->ref0 + j];
			if (prev != NONE && t->nodes[r].parent == NONE &&
			    !would_loop(t, prev, r))
				node_append(t, prev, r);
			prev = r;
		}
		/* 1.B. A link that would close a loop is not made and the
		 * old one stays, as the check comes before the break. */
		if (prev == NONE) {
			node_unlink(t, cur);
		} else if (t->nodes[cur].parent != prev &&
			   !would_loop(t, prev, cur)) {
			node_unlink(t, cur);
			node_append(t, prev, cur);
		}
	}
}

/* Step 3: dummies go. A message's parent becomes its nearest ancestor
 * that is a message or at the top level; a top-level dummy stays when
 * that leaves it two or more children, hands its only child to the root,
 * and goes when it has none. */
static void prune_dummies(struct tctx *t)
{
	size_t *order = xmalloc(t->nnodes * sizeof(*order));
	size_t *anc = xmalloc(t->nnodes * sizeof(*anc));
	size_t *cnt = xcalloc(t->nnodes, sizeof(*cnt));
	size_t k = preorder(t, order);

	for (size_t j = 1; j < k; j++) {
		size_t x = order[j], p = t->nodes[x].parent;
		if (p == ROOT)
			anc[x] = NONE;
		else if (!is_dummy(t, p) || t->nodes[p].parent == ROOT)
			anc[x] = p;
		else
			anc[x] = anc[p];
		if (!is_dummy(t, x) && anc[x] != NONE && is_dummy(t, anc[x]))
			cnt[anc[x]]++;
	}
	for (size_t j = 0; j < k; j++) {
		struct tnode *n = &t->nodes[order[j]];
		n->parent = n->first = n->last = n->next = n->prev = NONE;
	}
	for (size_t j = 1; j < k; j++) {
		size_t x = order[j];
		if (!is_dummy(t, x)) {
			size_t p = anc[x] == NONE ? ROOT : anc[x];
			if (p != ROOT && is_dummy(t, p) && cnt[p] == 1)
				p = ROOT;
			node_append(t, p, x);
		} else if (anc[x] == NONE && cnt[x] >= 2) {
			node_append(t, ROOT, x);
		}
	}
	free(cnt);
	free(anc);
	free(order);
}

static size_t thread_subject(const struct tctx *t, size_t x)
{
	size_t y = x;

	while (is_dummy(t, y) && t->nodes[y].first != NONE)
		y = t->nodes[y].first;
	return is_dummy(t, y) ? NONE : t->msgs[t->nodes[y].msg].subj_id;
}

static bool is_reply(const struct tctx *t, size_t x)
{
	return !is_dummy(t, x) && t->msgs[t->nodes[x].msg].is_reply;
}

/* Step 5: threads with the same base subject are merged. */
static void merge_subjects(struct tctx *t, size_t nsubj)
{
	size_t *table = xmalloc((nsubj + 1) * sizeof(*table));
	size_t ntop = 0, *top;

	for (size_t s = 0; s < nsubj; s++)
		table[s] = NONE;
	for (size_t x = t->nodes[ROOT].first; x != NONE; x = t->nodes[x].next)
		ntop++;
	top = xmalloc((ntop + 1) * sizeof(*top));
	ntop = 0;
	/* 5.B */
	for (size_t x = t->nodes[ROOT].first; x != NONE;
	     x = t->nodes[x].next) {
		size_t s = thread_subject(t, x);
		top[ntop++] = x;
		if (s == NONE)
			continue;
		size_t cur = table[s];
		if (cur == NONE)
			table[s] = x;
		else if (!is_dummy(t, cur) &&
			 (is_dummy(t, x) ||
			  (is_reply(t, cur) && !is_reply(t, x))))
			table[s] = x;
	}
	/* 5.C, over the top level as it was: a thread moved below another
	 * one is no longer a child of the root and is skipped. */
	for (size_t j = 0; j < ntop; j++) {
		size_t x = top[j];
		if (t->nodes[x].parent != ROOT)
			continue;
		size_t s = thread_subject(t, x);
		if (s == NONE || table[s] == x)
			continue;
		size_t cur = table[s];
		if (is_dummy(t, cur) && is_dummy(t, x)) {
			size_t c;
			while ((c = t->nodes[x].first) != NONE) {
				node_unlink(t, c);
				node_append(t, cur, c);
			}
			node_unlink(t, x);
		} else if (is_dummy(t, cur) ||
			   (is_reply(t, x) && !is_reply(t, cur))) {
			node_unlink(t, x);
			node_append(t, cur, x);
		} else {
			size_t d = node_new(t, NONE);
			node_unlink(t, cur);
			node_unlink(t, x);
			node_append(t, ROOT, d);
			node_append(t, d, cur);
			node_append(t, d, x);
			table[s] = d;
		}
	}
	free(top);
	free(table);
}

static void references(struct tctx *t)
{
	link_references(t);
	/* Step 2 */
	for (size_t x = 1; x < t->nnodes; x++) {
		if (t->nodes[x].parent == NONE)
			node_append(t, ROOT, x);
	}
	prune_dummies(t);
	/* Step 4 */
	for (size_t x = t->nodes[ROOT].first; x != NONE;
	     x = t->nodes[x].next) {
		if (is_dummy(t, x))
			sort_children(t, x);
	}
	sort_children(t, ROOT);
	merge_subjects(t, number_subjects(t));
	/* Step 6: children before parents, so that a dummy is placed by
	 * its first child as finally sorted. */
	size_t *order = xmalloc(t->nnodes * sizeof(*order));
	size_t k = preorder(t, order);
	while (k-- > 0)
		sort_children(t, order[k]);
	free(order);
}

struct upair {
	uint32_t uid, num;
};

static int cmp_upair(const void *pa, const void *pb)
{
	const struct upair *a = pa, *b = pb;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

static const struct index_msg *find_msg(const struct mailbox *mb,
					uint32_t uid)
{
	size_t lo = 0, hi = mb->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < mb->count && mb->msgs[lo].uid == uid)
		return &mb->msgs[lo];
	return NULL;
}

/* Everything the algorithms need from the index, copied, so that mb is
 * not read after the first get_refs call. */
static void load_messages(struct tctx *t, enum thread_alg alg,
			  const struct mailbox *mb, const struct upair *pairs)
{
	struct arena *a = arena_create(4096);

	for (size_t i = 0; i < t->n; i++) {
		struct tmsg *m = &t->msgs[i];
		const struct index_msg *im = find_msg(mb, pairs[i].uid);
		struct envelope env;
		size_t off = t->subjpool.len;

		memset(m, 0, sizeof(*m));
		memset(&env, 0, sizeof(env));
		m->uid = pairs[i].uid;
		m->num = pairs[i].num;
		if (im != NULL) {
			m->date = sort_sent_date(im);
			if (im->meta != NULL && im->meta->envelope != NULL)
				envelope_parse(a, kstr_cstr(im->meta->envelope),
					       &env);
		}
		sort_subject_key(env.subject, &t->subjpool, &m->is_reply);
		m->subj = (struct idref){ off, t->subjpool.len - off };
		if (alg == THREAD_REFERENCES) {
			size_t pos = 0, len;
			uint8_t *id = t->ring[0];
			/* Step 1.A: the first message with an ID owns its
			 * container; a later one, or one without an ID, gets a
			 * unique container. */
			m->node = NONE;
			if (env.message_id.p != NULL &&
			    next_msgid(env.message_id, &pos, id, &len)) {
				size_t x = intern(t, id, len);
				if (t->nodes[x].msg == NONE) {
					t->nodes[x].msg = i;
					m->node = x;
				}
			}
			if (m->node == NONE)
				m->node = node_new(t, i);
			pos = 0;
			if (env.in_reply_to.p != NULL &&
			    next_msgid(env.in_reply_to, &pos, id, &len)) {
				m->irt = (struct idref){ t->irtpool.len, len };
				buf_append(&t->irtpool, id, len);
			}
		}
		arena_reset(a);
	}
	arena_destroy(&a);
}

static void tctx_free(struct tctx *t)
{
	free(t->msgs);
	free(t->refs);
	free(t->nodes);
	free(t->skeys);
	free(t->tab);
	free(t->ring);
	buf_deinit(&t->subjpool);
	buf_deinit(&t->idpool);
	buf_deinit(&t->irtpool);
}

int thread_build(enum thread_alg alg, const struct mailbox *mb,
		 const uint32_t *uids, size_t n, bool use_uid,
		 const uint32_t *msns,
		 int (*get_refs)(void *ctx, uint32_t uid, struct kstr *refs_r),
		 void *ctx, struct buf *out)
{
	struct tctx t;
	struct upair *pairs;
	int ret = 0;

	if (n == 0)
		return 0;
	memset(&t, 0, sizeof(t));
	buf_init(&t.subjpool, 0);
	buf_init(&t.idpool, 0);
	buf_init(&t.irtpool, 0);
	t.walk_budget = WALK_BUDGET;
	t.ring = xmalloc(THREAD_MAX_REFS * sizeof(*t.ring));
	random_bytes(&t.seed, sizeof(t.seed));
	node_new(&t, NONE);	/* ROOT */

	pairs = xmalloc(n * sizeof(*pairs));
	for (size_t i = 0; i < n; i++) {
		pairs[i].uid = uids[i];
		pairs[i].num = use_uid || msns == NULL ? uids[i] : msns[i];
	}
	qsort(pairs, n, sizeof(*pairs), cmp_upair);
	for (size_t i = 0; i < n; i++) {
		if (t.n == 0 || pairs[t.n - 1].uid != pairs[i].uid)
			pairs[t.n++] = pairs[i];
	}
	t.msgs = xcalloc(t.n, sizeof(*t.msgs));
	load_messages(&t, alg, mb, pairs);
	free(pairs);
	mb = NULL;

	if (alg == THREAD_ORDEREDSUBJECT) {
		ordered_subject(&t);
	} else {
		for (size_t i = 0; i < t.n; i++) {
			struct kstr refs = { NULL, 0 };
			if (get_refs != NULL) {
				ret = get_refs(ctx, t.msgs[i].uid, &refs);
				if (ret < 0)
					goto out;
			}
			collect_refs(&t, i, refs);
		}
		references(&t);
	}
	ret = write_threads(&t, out);
out:
	tctx_free(&t);
	return ret;
}
