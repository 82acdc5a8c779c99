// prepare_text - tokenize text files with GPT-2's BPE into llm.c token shards.
//
// See usage() for the command line. Each shard is a 256 x int32 header
// ([0] = 20240520, [1] = 1, [2] = token count) and then uint16 tokens; every
// document is preceded by <|endoftext|> (llm.c's convention). The output does
// not depend on the number of threads: texts are cut into units and
// documents are assigned to train or val before any thread runs, and units
// are written back in order.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"
#include "src/tokenizer.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256
#define UNIT_BYTES (1u << 20)    // long documents are cut near this size to spread them over threads
#define BATCH_BYTES (64u << 20)  // text tokenized per parallel round

static void usage(FILE *f) {
    fprintf(f,
            "usage: prepare_text --vocab=DIR --out=DIR [options] FILE...\n"
            "Tokenizes text files with GPT-2's BPE (DIR/encoder.json and DIR/vocab.bpe,\n"
            "see scripts/get_gpt2_vocab) into llm.c token shards OUT/train_000000.bin,\n"
            "OUT/train_000001.bin, ... and OUT/val_000000.bin, ...\n"
            "\n"
            "Documents: by default each FILE is one document; with --split-lines each\n"
            "non-empty line is one (its line ending is not part of it). Empty documents\n"
            "are skipped. Every document is PRECEDED by <|endoftext|> (50256), as in llm.c.\n"
            "\n"
            "options:\n"
            "  --vocab=DIR         directory holding encoder.json and vocab.bpe (required)\n"
            "  --out=DIR           output directory, created if needed (required); shards\n"
            "                      of the same names are replaced\n"
            "  --val-fraction=F    fraction of documents for validation, 0 <= F < 1 (default 0):\n"
            "                      document k (counted from 0 over all files in order) is a\n"
            "                      validation document when floor((k+1)F) > floor(kF), which\n"
            "                      spreads them evenly (F = 0.1: documents 9, 19, 29, ...)\n"
            "  --shard-tokens=N    tokens per shard, the last one may hold fewer (default 100000000)\n"
            "  --split-lines       one document per non-empty line instead of per file\n"
            "  -h, --help          this text\n"
            "Threads: OpenMP, OMP_NUM_THREADS; the output is the same for any number.\n"
            "Progress goes to stderr; a summary line to stdout.\n");
}

// ---------------------------------------------------------------------------
// Shard writing: through OUT/.NAME.tmp, renamed when complete.

typedef struct {
    const char *split;  // "train" or "val"
    const char *out_dir;
    long shard_tokens;
    int index;          // number of shards finished
    FILE *f;            // the shard being written, or NULL
    char tmp_path[4096], final_path[4096];
    long count;         // tokens in the current shard
    long long total;    // tokens in all shards
} ShardWriter;

static void shard_write_header(ShardWriter *w) {
    int32_t header[SHARD_HEADER_INTS] = {0};
    header[0] = SHARD_MAGIC;
    header[1] = SHARD_VERSION;
    header[2] = (int32_t)w->count;
    if (fseek(w->f, 0, SEEK_SET) != 0) die("cannot write %s: %s", w->tmp_path, strerror(errno));
    xfwrite(header, sizeof header, w->f, w->tmp_path);
}

static void shard_open(ShardWriter *w) {
    snprintf(w->final_path, sizeof w->final_path, "%s/%s_%06d.bin", w->out_dir, w->split, w->index);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s/.%s_%06d.bin.tmp", w->out_dir, w->split, w->index);
    w->f = xfopen(w->tmp_path, "wb");
    w->count = 0;
    shard_write_header(w);  // a placeholder until the count is known
}

static void shard_close(ShardWriter *w) {
    if (!w->f) return;
    shard_write_header(w);
    if (fclose(w->f) != 0) die("cannot write %s: %s", w->tmp_path, strerror(errno));
    w->f = NULL;
    if (rename(w->tmp_path, w->final_path) != 0)
        die("cannot rename %s to %s: %s", w->tmp_path, w->final_path, strerror(errno));
    w->index++;
}

static void shard_append(ShardWriter *w, const int32_t *ids, size_t n) {
    uint16_t chunk[4096];
    while (n > 0) {
        if (!w->f) shard_open(w);
        size_t room = (size_t)(w->shard_tokens - w->count);
        size_t take = n < room ? n : room;
        if (take > sizeof chunk / sizeof chunk[0]) take = sizeof chunk / sizeof chunk[0];
        for (size_t i = 0; i < take; i++) chunk[i] = (uint16_t)ids[i];
        xfwrite(chunk, take * sizeof chunk[0], w->f, w->tmp_path);
        w->count += (long)take;
        w->total += (long long)take;
        ids += take;
        n -= take;
        if (w->count == w->shard_tokens) shard_close(w);
    }
}

// A shard left by an earlier, longer run would be mistaken for part of this one.
static void warn_stale_shard(const ShardWriter *w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%06d.bin", w->out_dir, w->split, w->index);
    if (access(path, F_OK) == 0)
        fprintf(stderr, "warning: %s is left from an earlier run and is not part of this output\n", path);
}

// ---------------------------------------------------------------------------
// Units of work: a document, or a piece of a long one cut at a safe point.

typedef struct {
    const unsigned char *text;
    size_t len;
    long document;
    int starts_document;
    TokenList tokens;
} Unit;

typedef struct {
    const Tokenizer *tokenizer;
    double val_fraction;
    Unit *units;
    size_t count, cap, bytes;
    void **owned;  // file buffers to free after the next flush
    size_t owned_count, owned_cap;
    long documents, val_documents;
    long long text_bytes;
    ShardWriter train, val;
    double start_time, last_report;
} Job;

static int is_val_document(double fraction, long k) {
    return floor((double)(k + 1) * fraction) > floor((double)k * fraction);
}

static void report_progress(Job *job, int final) {
    double now = now_seconds();
    if (!final && now - job->last_report < 1.0) return;
    job->last_report = now;
    double elapsed = now - job->start_time;
    long long tokens = job->train.total + job->val.total;
    fprintf(stderr, "%sprepare_text: %ld documents, %.1f MB, %lld tokens, %.2fM tokens/s%s",
            isatty(STDERR_FILENO) ? "\r" : "", job->documents, (double)job->text_bytes / 1e6, tokens,
            elapsed > 0 ? (double)tokens / elapsed / 1e6 : 0.0,
            (final || !isatty(STDERR_FILENO)) ? "\n" : "");
    fflush(stderr);
}

static void flush_units(Job *job) {
    long n = (long)job->count;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (long i = 0; i < n; i++) {
        Unit *u = &job->units[i];
        tokenizer_encode(job->tokenizer, u->text, u->len, &u->tokens);
    }
    int32_t eot = tokenizer_eot(job->tokenizer);
    for (long i = 0; i < n; i++) {
        Unit *u = &job->units[i];
        ShardWriter *w = is_val_document(job->val_fraction, u->document) ? &job->val : &job->train;
        if (u->starts_document) shard_append(w, &eot, 1);
        shard_append(w, u->tokens.ids, u->tokens.len);
        token_list_free(&u->tokens);
    }
    job->count = 0;
    job->bytes = 0;
    for (size_t i = 0; i < job->owned_count; i++) free(job->owned[i]);
    job->owned_count = 0;
    report_progress(job, 0);
}

static void add_unit(Job *job, const unsigned char *text, size_t len, long document, int starts_document) {
    if (job->count == job->cap) {
        job->cap = job->cap ? 2 * job->cap : 1024;
        job->units = xrealloc(job->units, job->cap * sizeof *job->units);
    }
    job->units[job->count++] = (Unit){text, len, document, starts_document, {0}};
    job->bytes += len;
    if (job->bytes >= BATCH_BYTES) flush_units(job);
}

static void add_document(Job *job, const unsigned char *text, size_t len) {
    if (len == 0) return;
    long document = job->documents++;
    if (is_val_document(job->val_fraction, document)) job->val_documents++;
    job->text_bytes += (long long)len;
    for (size_t start = 0; start < len;) {
        size_t end = len - start <= UNIT_BYTES ? len : tokenizer_safe_split(text, len, start + UNIT_BYTES);
        add_unit(job, text + start, end - start, document, start == 0);
        start = end;
    }
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = xfopen(path, "rb");
    size_t cap = 1 << 16, len = 0;
    unsigned char *data = xmalloc(cap);
    size_t got;
    while ((got = fread(data + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) data = xrealloc(data, cap *= 2);
    }
    if (ferror(f)) die("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    *size = len;
    return data;
}

// ---------------------------------------------------------------------------

static const char *flag_value(const char *arg, const char *name) {
    size_t n = strlen(name);
    return (strncmp(arg, name, n) == 0 && arg[n] == '=') ? arg + n + 1 : NULL;
}

int main(int argc, char **argv) {
    const char *vocab_dir = NULL, *out_dir = NULL;
    double val_fraction = 0.0;
    long shard_tokens = 100000000;
    int split_lines = 0;
    const char **files = xmalloc((size_t)argc * sizeof *files);
    int file_count = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        char *end;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if ((v = flag_value(arg, "--vocab"))) {
            vocab_dir = v;
        } else if ((v = flag_value(arg, "--out"))) {
            out_dir = v;
        } else if ((v = flag_value(arg, "--val-fraction"))) {
            errno = 0;
            val_fraction = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || errno || !(val_fraction >= 0.0 && val_fraction < 1.0))
                die_usage("--val-fraction: expected a number in [0, 1), got '%s'", v);
        } else if ((v = flag_value(arg, "--shard-tokens"))) {
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno || n < 1 || n > INT32_MAX)
                die_usage("--shard-tokens: expected an integer in [1, %d], got '%s'", INT32_MAX, v);
            shard_tokens = (long)n;
        } else if (strcmp(arg, "--split-lines") == 0) {
            split_lines = 1;
        } else if (strncmp(arg, "-", 1) == 0 && arg[1] != '\0') {
            die_usage("unknown flag %s (see --help)", arg);
        } else {
            files[file_count++] = arg;
        }
    }
    if (!vocab_dir) die_usage("--vocab=DIR is required (see --help)");
    if (!out_dir) die_usage("--out=DIR is required (see --help)");
    if (file_count == 0) die_usage("no input FILE given (see --help)");
    for (int i = 0; i < file_count; i++) {  // fail before any work if an input is missing
        FILE *f = xfopen(files[i], "rb");
        fclose(f);
    }

    Tokenizer *tokenizer = tokenizer_load_or_die(vocab_dir);
    if (tokenizer_vocab_size(tokenizer) > 65536)
        die("%s: vocabulary of %d tokens does not fit uint16 shards", vocab_dir, tokenizer_vocab_size(tokenizer));
    if (make_dirs(out_dir) != 0) die("cannot create directory %s: %s", out_dir, strerror(errno));

    Job job = {0};
    job.tokenizer = tokenizer;
    job.val_fraction = val_fraction;
    job.train = (ShardWriter){.split = "train", .out_dir = out_dir, .shard_tokens = shard_tokens};
    job.val = (ShardWriter){.split = "val", .out_dir = out_dir, .shard_tokens = shard_tokens};
    job.start_time = job.last_report = now_seconds();

    for (int i = 0; i < file_count; i++) {
        size_t size;
        unsigned char *data = read_file(files[i], &size);
        if (split_lines) {
            for (size_t start = 0; start < size;) {
                unsigned char *newline = memchr(data + start, '\n', size - start);
                size_t end = newline ? (size_t)(newline - data) : size;
                size_t len = end - start;
                if (len > 0 && data[start + len - 1] == '\r') len--;
                add_document(&job, data + start, len);
                start = end + 1;
            }
        } else {
            add_document(&job, data, size);
        }
        if (job.owned_count == job.owned_cap) {
            job.owned_cap = job.owned_cap ? 2 * job.owned_cap : 64;
            job.owned = xrealloc(job.owned, job.owned_cap * sizeof *job.owned);
        }
        job.owned[job.owned_count++] = data;  // freed by the flush after its last unit
    }
    flush_units(&job);
    shard_close(&job.train);
    shard_close(&job.val);
    warn_stale_shard(&job.train);
    warn_stale_shard(&job.val);
    report_progress(&job, 1);

    if (job.documents == 0) fprintf(stderr, "warning: no documents (all inputs are empty)\n");
    else if (val_fraction > 0 && job.val_documents == 0)
        fprintf(stderr, "warning: --val-fraction=%g chose no document among %ld; no val shards\n", val_fraction,
                job.documents);
    printf("prepare_text: %ld documents (%ld val), %lld train tokens in %d shards, %lld val tokens in %d shards, "
           "in %s\n",
           job.documents, job.val_documents, job.train.total, job.train.index, job.val.total, job.val.index, out_dir);

    free(job.units);
    free(job.owned);
    free(files);
    tokenizer_free(tokenizer);
    return 0;
}
