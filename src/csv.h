// csv.h - the metrics.csv files both trainers write.
//
// One row per logged step; a cell is empty where that value was not measured
// at that step (the caller passes CSV_EMPTY); NaN and inf are written as
// "nan" and "inf", so a numerical fault is visible in the file. Rows are flushed as written, so
// a crashed run keeps every row it logged. Resuming from a checkpoint at step
// S keeps the rows with first column <= S and drops the rest (they belong to
// steps that will be run again).
#ifndef CSV_H
#define CSV_H

#include <float.h>
#include <stdio.h>

#define CSV_EMPTY (-DBL_MAX)

typedef struct {
    FILE *f;
    char path[4096];
    int columns;
} Csv;

// Creates path with `header` (comma-separated), or, with keep_upto >= 0,
// reopens it keeping the header and the rows whose first cell <= keep_upto.
// Dies naming the file when it cannot, or when the existing header differs.
void csv_open(Csv *csv, const char *path, const char *header, double keep_upto);
void csv_row(Csv *csv, const double *values);   // `columns` values; nothing on a zeroed Csv
void csv_close(Csv *csv);

#endif
