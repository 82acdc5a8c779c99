// runctl.c - see runctl.h
#define _POSIX_C_SOURCE 200809L
#include "runctl.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

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

const char *runctl_first_nonfinite(const Backend *be, const real *buf, size_t n,
                                   const ParamSlice *slices, const char (*names)[32], int nslices) {
    real *host = xmalloc(n * sizeof(real));
    be->download(host, buf, n * sizeof(real));
    const char *name = NULL;
    for (int k = 0; k < nslices && !name; k++)
        for (size_t i = 0; i < slices[k].size && !name; i++)
            if (!isfinite(host[slices[k].offset + i])) name = names[k];
    free(host);
    return name;
}
