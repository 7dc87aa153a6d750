/* compress: the two raw DEFLATE streams of COMPRESS=DEFLATE (RFC 4978),
 * in memory, with ISA-L igzip. No socket I/O, no zlib.
 *
 * After the tagged OK of "COMPRESS DEFLATE" has been sent uncompressed,
 * every byte in both directions is one endless raw DEFLATE stream
 * (RFC 1951: no zlib or gzip header or trailer, 32 KiB window):
 *
 *   responses --compress_out_write()--> ... --compress_out_flush()--> send()
 *   recv()  --compress_in_feed()--> plaintext for the IMAP parser
 *
 * The server calls compress_out_flush() after every batch of responses,
 * before it sends: a SYNC FLUSH ends the current block and byte-aligns
 * the stream, so the client can decode everything written so far without
 * waiting for more (RFC 4978 section 4). Without it the client may wait
 * forever for the tail of a response.
 *
 * Memory per connection (ISA-L 2.30, x86-64), allocated lazily: nothing
 * beyond the small handles until the first byte goes through a stream.
 *   - compressor: struct isal_zstream (80.5 KiB: 64 KiB history buffer and
 *     a hash head table) plus a level-1 buffer of ISAL_DEF_LVL1_SMALL
 *     (84 KiB: hash table and a 16 Ki-token block buffer), about 164 KiB.
 *     The larger ISAL_DEF_LVL1_DEFAULT buffer (276 KiB) gave the same
 *     ratio and speed on IMAP-like text in our measurements (blocks end at
 *     every flush anyway); ISAL_DEF_LVL1_MIN (24 KiB) made bulk output
 *     about 2% larger and half as fast. compress_out_idle() frees all of
 *     it between batches.
 *   - decompressor: struct inflate_state (85.3 KiB: 64 KiB of history and
 *     decoded-but-undelivered output, plus Huffman lookup tables). It
 *     cannot be released while the connection lives, because the client's
 *     compressor may refer back into the last 32 KiB at any time.
 * compress_out_memory() and compress_in_memory() report the current
 * figures, for the connection's byte budget.
 *
 * Both objects belong to one thread. Functions never block and never
 * call back. */
#ifndef KURA_COMPRESS_H
#define KURA_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

struct compress_out;
struct compress_in;

/* ---- server -> client ---- */

/* A compressor with no stream state yet (a few dozen bytes; the ISA-L
 * state is allocated at the first non-empty write). Never NULL. */
struct compress_out *compress_out_create(void);
/* Frees everything; sets *co to NULL. NULL or *co == NULL is a no-op. */
void compress_out_destroy(struct compress_out **co);

/* Compresses plain[0..len) and appends compressed bytes to dst.
 * Compressed output lags behind the input (ISA-L keeps up to about 64 KiB
 * of input and one block of tokens inside): only compress_out_flush()
 * makes the output so far decodable.
 * dst->max bounds the appending (0 = no bound). Returns the number of
 * plaintext bytes taken: len, or fewer only when dst reached its max
 * (send dst, then call again with the rest; nothing is lost), and 0 also
 * when an unfinished flush could not complete for the same reason.
 * Returns -EIO if ISA-L fails (not expected: it has no failure mode for
 * valid parameters); the stream is then unusable. */
ssize_t compress_out_write(struct compress_out *co, const void *plain,
			   size_t len, struct buf *dst);

/* Ends the current DEFLATE block with a SYNC FLUSH (an empty stored block,
 * "00 00 ff ff" on a byte boundary) and appends everything still inside
 * the compressor to dst, so the client can decode every byte written so
 * far. Appends nothing when nothing was written since the last completed
 * flush. Returns 0 when complete, -ENOBUFS when dst reached its max first
 * (send dst and call again: the flush resumes where it stopped; writes
 * are accepted meanwhile and finish the flush first), -EIO as for
 * compress_out_write(). */
int compress_out_flush(struct compress_out *co, struct buf *dst);

/* For a quiet connection (IDLE, or nothing to do after a flush): frees
 * the ISA-L state (compress_out_memory() drops to the handle alone) if the
 * stream is at a completed flush. The next write starts a fresh compressor
 * that continues the same raw DEFLATE stream but cannot refer back into
 * what was sent before, so the next batch compresses a little worse.
 * Returns true if memory was freed, false if there was none or a flush is
 * still unfinished (nothing changes then). */
bool compress_out_idle(struct compress_out *co);

/* Heap bytes the compressor holds now (handle included). */
size_t compress_out_memory(const struct compress_out *co);

/* ---- client -> server ---- */

/* A decompressor with no stream state yet (allocated at the first
 * non-empty feed). Never NULL. */
struct compress_in *compress_in_create(void);
/* Frees everything; sets *ci to NULL. NULL or *ci == NULL is a no-op. */
void compress_in_destroy(struct compress_in **ci);

/* Decompresses compressed[0..len) (len may be 0: only delivers pending
 * output) and appends the plaintext to plain_dst, never letting it grow
 * past plain_dst->max, which must be non-zero: a 1 KiB input can hold
 * megabytes of output (a "decompression bomb"), so the output is bounded
 * by the caller's buffer, and the decompressor's own memory is fixed
 * (see compress_in_memory()).
 * Returns the number of compressed bytes taken (0..len): fewer than len
 * when plain_dst is full; take plaintext out of plain_dst and call again
 * with the rest. Bytes taken may include a partial symbol or header kept
 * inside; they are never to be fed again. Plaintext can remain inside
 * after all input was taken: see compress_in_pending().
 * Errors: -EPROTO if the stream is invalid (bad block type, bad Huffman
 * code, back-reference beyond the window, stored block length mismatch,
 * or any byte after a final block); plain_dst is then unchanged by this
 * call, and every later call returns -EPROTO again (close the
 * connection). A stream that stops in the middle of a block is not an
 * error: the rest may come with the next recv(). -EINVAL if
 * plain_dst->max is 0. */
ssize_t compress_in_feed(struct compress_in *ci, const void *compressed,
			 size_t len, struct buf *plain_dst);

/* True if decoded plaintext is waiting inside because plain_dst was full:
 * call compress_in_feed(ci, NULL, 0, dst) once dst has room, before
 * waiting for more network input, or a command may sit here unseen. */
bool compress_in_pending(const struct compress_in *ci);

/* True once the client ended its stream with a final block and every
 * byte of it was delivered. The client can send nothing more. */
bool compress_in_is_finished(const struct compress_in *ci);

/* Heap bytes the decompressor holds now (handle included). */
size_t compress_in_memory(const struct compress_in *ci);

#endif
