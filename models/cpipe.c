// The pipeline floor: the same stages in C + BLAS, the schedule written in C, activations and
// gradients over MPI_Send/MPI_Recv, nothing else between stages. One MPI rank per stage (or one
// rank, the whole model on P BLAS threads: the one-process baseline). Started by
// bench/pipeline/c_rank.py through mpiexec:
//
//   cpipe DATA GRADS ROUND STEPS GATE LR NDIMS DIM... CASE...   (CASE: gpipe:M, 1f1b:M, one-process:1)
//
// Per case, rank 0 prints one JSON line (protocol.PipeResult; bench/pipeline/c_rank.py adds the
// gate's error): the step times (each from a barrier before it to a barrier after it, as the torch
// ranks), each stage's forward and backward alone on one microbatch, the one-way send time, every
// rank's action order. With GATE 1 the summed gradient of the first step goes to
// GRADS.<schedule>.<M>.bin first. Across nodes (BENCH_CPIPE_JOIN="NODE NNODES HOST:PORT
// TIMEOUT_S"), each node's mpiexec starts its own ranks and models/cjoin.c makes them one
// communicator; exit 5 when the nodes did not all meet.
#define _GNU_SOURCE
#include <math.h>
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cjoin.h"
#include "cpipe.h"

// The pipeline's ranks: MPI_COMM_WORLD on one node; across nodes, every node's (models/cjoin.c).
static MPI_Comm comm;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double median_s(int64_t *ns, int n) {  // of ns[0..n), in seconds
    qsort(ns, n, sizeof(int64_t), cmp_i64);
    return (n % 2 ? (double)ns[n / 2] : 0.5 * ((double)ns[n / 2 - 1] + (double)ns[n / 2])) / 1e9;
}

typedef struct {
    Stage *st;
    int rank, P, M, gpipe;
    size_t act;
    float **in, **out, **dout, **din;  // per microbatch: received input, sent output, their gradients
    MPI_Request *req;
} Pipe;

// One rank's order of (F|B, microbatch): GPipe every forward then every backward; 1F1B warms up
// with P - 1 - rank forwards, then alternates (bench/schedules.py hand_order).
static int order(const Pipe *p, char *kind, int *mb) {
    int n = 0;
    if (p->gpipe) {
        for (int m = 0; m < p->M; m++) { kind[n] = 'F'; mb[n++] = m; }
        for (int m = 0; m < p->M; m++) { kind[n] = 'B'; mb[n++] = m; }
        return n;
    }
    int warm = p->P - 1 - p->rank < p->M ? p->P - 1 - p->rank : p->M, f = 0, b = 0;
    for (; f < warm; f++) { kind[n] = 'F'; mb[n++] = f; }
    while (b < p->M) {
        if (f < p->M) { kind[n] = 'F'; mb[n++] = f++; }
        kind[n] = 'B'; mb[n++] = b++;
    }
    return n;
}

// The schedule's forwards and backwards: blocking receives, non-blocking sends (two blocking sends
// facing each other could deadlock), every send waited for before the step ends.
static void run_schedule(Pipe *p) {
    char kind[4096];
    int mb[4096], n = order(p, kind, mb), nreq = 0, first = p->rank == 0, last = p->rank == p->P - 1;
    int count = (int)p->act;
    for (int i = 0; i < n; i++) {
        int m = mb[i];
        if (kind[i] == 'F') {
            if (!first) MPI_Recv(p->in[m], count, MPI_FLOAT, p->rank - 1, m, comm, MPI_STATUS_IGNORE);
            stage_forward(p->st, m, first ? NULL : p->in[m], last ? NULL : p->out[m]);
            if (!last) MPI_Isend(p->out[m], count, MPI_FLOAT, p->rank + 1, m, comm, &p->req[nreq++]);
        } else {
            if (!last) MPI_Recv(p->dout[m], count, MPI_FLOAT, p->rank + 1, p->M + m, comm, MPI_STATUS_IGNORE);
            stage_backward(p->st, m, last ? NULL : p->dout[m], first ? NULL : p->din[m]);
            if (!first) MPI_Isend(p->din[m], count, MPI_FLOAT, p->rank - 1, p->M + m, comm, &p->req[nreq++]);
        }
    }
    MPI_Waitall(nreq, p->req, MPI_STATUSES_IGNORE);
}

// The tied parameter's gradient summed over the ranks (zeros where a rank holds none), then SGD.
static void finish_step(Pipe *p, float lr) {
    size_t off, len;
    stage_tied(p->st, &off, &len);
    if (len && p->P > 1) MPI_Allreduce(MPI_IN_PLACE, stage_grads(p->st) + off, (int)len, MPI_FLOAT, MPI_SUM, comm);
    stage_update(p->st, lr);
}

static void step(Pipe *p, float lr) {
    stage_zero_grad(p->st);
    run_schedule(p);
    finish_step(p, lr);
}

// Forward and backward of this rank's stage alone on microbatch 0 (median of the last 5 of 6).
static void stage_times(Pipe *p, double *f, double *b) {
    int64_t fs[6], bs[6];
    float *x = p->in[0], *y = p->out[0], *g = p->dout[0], *dx = p->din[0];
    for (size_t i = 0; i < p->act; i++) x[i] = g[i] = 1e-2f;
    for (int r = 0; r < 6; r++) {
        int64_t t0 = now_ns();
        stage_forward(p->st, 0, p->rank == 0 ? NULL : x, p->rank == p->P - 1 ? NULL : y);
        int64_t t1 = now_ns();
        stage_backward(p->st, 0, p->rank == p->P - 1 ? NULL : g, p->rank == 0 ? NULL : dx);
        fs[r] = t1 - t0;
        bs[r] = now_ns() - t1;
    }
    stage_zero_grad(p->st);
    *f = median_s(fs + 1, 5);
    *b = median_s(bs + 1, 5);
}

// One-way time of one microbatch's activation from rank 0 to rank 1: half the fastest of 10
// ping-pongs (as the torch ranks' send: the ideal is a lower bound).
static double comm_time(Pipe *p) {
    int64_t ts[11];
    for (int r = 0; r < 11; r++) {
        MPI_Barrier(comm);
        int64_t t0 = now_ns();
        if (p->rank == 0) {
            MPI_Send(p->out[0], (int)p->act, MPI_FLOAT, 1, 0, comm);
            MPI_Recv(p->out[0], (int)p->act, MPI_FLOAT, 1, 0, comm, MPI_STATUS_IGNORE);
        } else if (p->rank == 1) {
            MPI_Recv(p->out[0], (int)p->act, MPI_FLOAT, 0, 0, comm, MPI_STATUS_IGNORE);
            MPI_Send(p->out[0], (int)p->act, MPI_FLOAT, 0, 0, comm);
        }
        ts[r] = now_ns() - t0;
    }
    int64_t fastest = ts[1];
    for (int r = 2; r < 11; r++) fastest = ts[r] < fastest ? ts[r] : fastest;
    return (double)fastest / 1e9 / 2;
}

// The two copies of the tied parameter (the first stage's and the last's) after the steps: their
// largest difference over the largest value (0 when they moved together, as one parameter).
static double tied_drift(Pipe *p) {
    size_t off, len;
    stage_tied(p->st, &off, &len);
    if (!len || p->P < 2) return 0.0;
    float *mine = stage_params(p->st) + off;
    double drift = 0.0, big = 1e-30;
    if (p->rank == p->P - 1) MPI_Send(mine, (int)len, MPI_FLOAT, 0, 7, comm);
    if (p->rank == 0) {
        float *other = malloc(sizeof(float) * len);
        MPI_Recv(other, (int)len, MPI_FLOAT, p->P - 1, 7, comm, MPI_STATUS_IGNORE);
        for (size_t i = 0; i < len; i++) {
            double d = fabs((double)mine[i] - other[i]), m = fabs((double)mine[i]);
            drift = d > drift ? d : drift;
            big = m > big ? m : big;
        }
        free(other);
    }
    return drift / big;
}

// Every rank's (F|B, microbatch) order as this program runs it, as "stage kind microbatch" actions
// ("0F1"), the torch ranks' notation (tests/test_pipeline_numbers.py checks it per schedule).
static void print_orders(const Pipe *p) {
    char kind[4096];
    int mb[4096];
    for (int r = 0; r < p->P; r++) {
        Pipe q = *p;
        q.rank = r;
        int n = order(&q, kind, mb);
        printf("%s\"%d\": [", r ? ", " : "", r);
        for (int i = 0; i < n; i++) printf("%s\"%d%c%d\"", i ? ", " : "", r, kind[i], mb[i]);
        printf("]");
    }
}

static float **buffers(int M, size_t n) {
    float **b = malloc(sizeof(float *) * M);
    for (int m = 0; m < M; m++) b[m] = calloc(n ? n : 1, sizeof(float));
    return b;
}

static void free_buffers(float **b, int M) {
    for (int m = 0; m < M; m++) free(b[m]);
    free(b);
}

static int run_case(const char *name, int M, int *dims, int ndims, char **argv, int rank, int P) {
    const char *data = argv[1], *grads = argv[2];
    int round = atoi(argv[3]), steps = atoi(argv[4]), gate = atoi(argv[5]);
    float lr = (float)atof(argv[6]);
    Pipe p = {0};
    p.rank = rank; p.P = P; p.M = M; p.gpipe = strcmp(name, "1f1b") != 0;
    p.st = stage_new(dims, ndims, data, P, rank, M);
    if (!p.st) return 1;
    p.act = stage_act_len(p.st);
    p.in = buffers(M, p.act); p.out = buffers(M, p.act); p.dout = buffers(M, p.act); p.din = buffers(M, p.act);
    p.req = malloc(sizeof(MPI_Request) * 2 * M);
    if (gate) {  // the first step's gradient, summed over the ranks before the tied sum, to a file
        stage_zero_grad(p.st);
        run_schedule(&p);
        size_t n = stage_num_params(p.st);
        float *sum = rank == 0 ? malloc(sizeof(float) * n) : NULL;
        MPI_Reduce(stage_grads(p.st), sum, (int)n, MPI_FLOAT, MPI_SUM, 0, comm);
        if (rank == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s.%s.%d.bin", grads, name, M);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(sum, sizeof(float), n, f) != n) { fprintf(stderr, "cannot write %s\n", path); return 1; }
            fclose(f);
            free(sum);
        }
        finish_step(&p, lr);
    }
    for (int i = 0; i < 2; i++) step(&p, lr);  // warm-up
    int64_t *ns = malloc(sizeof(int64_t) * steps);
    for (int i = 0; i < steps; i++) {
        MPI_Barrier(comm);
        int64_t t0 = now_ns();
        step(&p, lr);
        MPI_Barrier(comm);
        ns[i] = now_ns() - t0;
    }
    double fb[2], all[2 * 64];
    stage_times(&p, &fb[0], &fb[1]);
    MPI_Gather(fb, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, comm);
    double send_s = P > 1 ? comm_time(&p) : 0.0, drift = tied_drift(&p);
    if (rank == 0 && drift > 1e-6) {  // the tied parameter is one parameter: its copies must agree
        printf("{\"op\": \"result\", \"schedule\": \"%s\", \"microbatches\": %d, \"round\": %d, \"status\": "
               "\"error\", \"error\": \"the tied parameter's two copies differ by %.1e of its largest value after "
               "the steps\"}\n", name, M, round, drift);
        fflush(stdout);
    } else if (rank == 0) {
        printf("{\"op\": \"result\", \"schedule\": \"%s\", \"microbatches\": %d, \"round\": %d, \"status\": \"ok\", "
               "\"step_ns\": [", name, M, round);
        for (int i = 0; i < steps; i++) printf("%s%lld", i ? ", " : "", (long long)ns[i]);
        printf("], \"stage_f_s\": {");
        for (int r = 0; r < P; r++) printf("%s\"%d\": %.9g", r ? ", " : "", r, all[2 * r]);
        printf("}, \"stage_b_s\": {");
        for (int r = 0; r < P; r++) printf("%s\"%d\": %.9g", r ? ", " : "", r, all[2 * r + 1]);
        printf("}, \"comm_s\": %.9g, \"order\": {", send_s);
        print_orders(&p);
        printf("}}\n");
        fflush(stdout);
    }
    free(ns); free(p.req);
    free_buffers(p.in, M); free_buffers(p.out, M); free_buffers(p.dout, M); free_buffers(p.din, M);
    stage_free(p.st);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    if (argc < 9 || P > 64) {
        if (rank == 0) fprintf(stderr, "usage: cpipe DATA GRADS ROUND STEPS GATE LR NDIMS DIM... CASE...\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (P > 1) {  // one CPU per rank: the rank-th of the CPUs this node's ranks were given
        cpu_set_t have, one;
        sched_getaffinity(0, sizeof have, &have);
        CPU_ZERO(&one);
        for (int c = 0, k = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &have) && k++ == rank) CPU_SET(c, &one);
        if (CPU_COUNT(&one)) sched_setaffinity(0, sizeof one, &one);
    }
    comm = MPI_COMM_WORLD;
    const char *nodes = getenv("BENCH_CPIPE_JOIN");  // "NODE NNODES HOST:PORT TIMEOUT_S"
    if (nodes && *nodes) {
        int node = -1, nnodes = 0;
        char endpoint[300] = "";
        double timeout_s = 0;
        sscanf(nodes, "%d %d %299s %lf", &node, &nnodes, endpoint, &timeout_s);
        comm = cjoin(node, nnodes, endpoint, timeout_s);
        if (comm == MPI_COMM_NULL) {  // bench/pipeline/rank.py NO_GROUP
            MPI_Finalize();
            return 5;
        }
        MPI_Comm_rank(comm, &rank);
        MPI_Comm_size(comm, &P);
    }
    int ndims = atoi(argv[7]), dims[16];
    for (int i = 0; i < ndims && i < 16; i++) dims[i] = atoi(argv[8 + i]);
    for (int c = 8 + ndims; c < argc; c++) {
        char name[64];
        int M = 1;
        const char *colon = strchr(argv[c], ':');
        size_t len = colon ? (size_t)(colon - argv[c]) : strlen(argv[c]);
        snprintf(name, sizeof name, "%.*s", (int)len, argv[c]);
        if (colon) M = atoi(colon + 1);
        if (run_case(name, M, dims, ndims, argv, rank, P)) MPI_Abort(comm, 3);
    }
    MPI_Finalize();
    return 0;
}
