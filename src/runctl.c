// runctl.c - see runctl.h
#define _POSIX_C_SOURCE 200809L
#include "runctl.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../ops.h"
#include "common.h"

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    if (stop_signal) _Exit(128 + sig);
    stop_signal = sig;
}

void runctl_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

int runctl_stop_signal(void) { return stop_signal; }

void run_paths(RunPaths *p, const char *resume, const char *out, const char *default_dir,
               int overwrite) {
    snprintf(p->dir, sizeof p->dir, "%s", *resume ? resume : *out ? out : default_dir);
    snprintf(p->metrics, sizeof p->metrics, "%s/metrics.csv", p->dir);
    snprintf(p->checkpoint, sizeof p->checkpoint, "%s/checkpoint.bin", p->dir);
    struct stat st;
    if (!*resume && !overwrite && stat(p->metrics, &st) == 0)
        die_usage("--out=%s already holds a run: --resume=%s continues it, --overwrite=1 replaces it",
                  p->dir, p->dir);
    if (*resume && stat(p->checkpoint, &st) != 0)
        die_usage("--resume=%s: no checkpoint.bin there (was --save-every set?)", p->dir);
}

void format_eta(double seconds, char *buf, size_t n) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, n, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
}

void print_peak_memory(const Backend *be) {
    if (!be->peak_memory) return;
    size_t total = 0, used = 0;
    const size_t peak = be->peak_memory(&total, &used);
    const int gib = total >= ((size_t)1 << 30);   // (an emulated device may have less)
    printf("peak GPU memory: %.1f MiB allocated by the trainer, %.1f MiB in use on the device at "
           "most (device total %.1f %s)\n", peak / 1048576.0, used / 1048576.0,
           total / (gib ? 1073741824.0 : 1048576.0), gib ? "GiB" : "MiB");
}
