// runctl.h - run control shared by both trainers: signals, run directories.
//
// SIGINT and SIGTERM set a flag the training loop polls after each step: it
// then writes a checkpoint and exits with 128 + the signal. A second signal
// exits at once (the last checkpoint is whole: checkpoints are written
// atomically). SIGXFSZ is ignored, so writing past a file-size limit fails
// with EFBIG and a clear message instead of killing the process.
#ifndef RUNCTL_H
#define RUNCTL_H

#include <stddef.h>

// A run directory: --resume=DIR, else --out, else the trainer's default name.
typedef struct {
    char dir[4096];
    char metrics[4200];      // DIR/metrics.csv
    char checkpoint[4200];   // DIR/checkpoint.bin
} RunPaths;

// Fills the paths and checks them: a new run refuses a directory that holds a
// run already (unless overwrite), a resumed one needs a checkpoint there.
// Usage errors (exit 2) name the flag. Creates nothing.
void run_paths(RunPaths *p, const char *resume, const char *out, const char *default_dir,
               int overwrite);
// "1h05m" or "3m07s"
void format_eta(double seconds, char *buf, size_t n);

// The end of a run on a GPU (a backend with peak_memory; nothing on the CPU):
// "peak GPU memory: 123.4 MiB allocated by the trainer, 650.2 MiB in use on
// the device at most (device total 80.0 GiB)" on stdout
struct Backend;
void print_peak_memory(const struct Backend *be);

// exit codes beyond common.h's 1 (runtime error) and 2 (usage)
enum { EXIT_NAN = 3 };   // a NaN or inf with --on-nan=stop

void runctl_install_signal_handlers(void);
// 0, or the signal (SIGINT, SIGTERM) that asked the run to stop
int runctl_stop_signal(void);

#endif
