// The GPT's pipeline stage for models/cpipe.c: stage s of S holds blocks l0..l1-1 (numpy's
// array_split of the L blocks, as models/gpt/torch_impl.py pipeline_stages cuts them); the first
// also embeds (wte, wpe), the last also normalises and projects with the tied wte. Built from
// gpt.c's block_forward/block_backward, encoder and head; every microbatch has its own activation
// buffers (GPipe keeps M of them alive), and the gradients accumulate over the microbatches.
//
// dims = {B, T, C, L, NH, V, gemm_attention}: the whole batch; a microbatch has b = B / M sequences.
// data = float32 parameters (param_names order), idx (B, T) int64, targets (B, T) int64.
#include <stdio.h>
#include <stdlib.h>

#include "../cpipe.h"
#include "gpt.c"

struct Stage {
    Dims d;  // B = b
    int l0, l1, first, last, M;
    size_t n, nacts;
    float *params, *grads, **acts, **dacts;
    int64_t *idx, *targets;  // (B, T) each: the whole batch
};

Stage *stage_new(const int *dims, int ndims, const char *data, int S, int s, int M) {
    if (ndims != 7 || dims[0] % M || dims[2] % dims[4]) {
        fprintf(stderr, "gpt stage: want dims B T C L NH V gemm_attention with M | B and NH | C\n");
        return NULL;
    }
    Stage *st = calloc(1, sizeof(Stage));
    Dims d = {dims[0] / M, dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]};
    st->d = d;
    st->M = M;
    int base = d.L / S, extra = d.L % S;
    st->l0 = s * base + (s < extra ? s : extra);
    st->l1 = st->l0 + base + (s < extra);
    st->first = s == 0;
    st->last = s == S - 1;
    st->n = gpt_num_params(dims);
    st->nacts = final_acts(&d).total;
    size_t tokens = (size_t)dims[0] * d.T;
    st->params = malloc(sizeof(float) * st->n);
    st->grads = calloc(st->n, sizeof(float));
    st->idx = malloc(sizeof(int64_t) * tokens);
    st->targets = malloc(sizeof(int64_t) * tokens);
    FILE *f = fopen(data, "rb");
    if (!f || fread(st->params, sizeof(float), st->n, f) != st->n || fread(st->idx, 8, tokens, f) != tokens ||
        fread(st->targets, 8, tokens, f) != tokens) {
        fprintf(stderr, "gpt stage: cannot read %s\n", data);
        return NULL;
    }
    fclose(f);
    st->acts = malloc(sizeof(float *) * M);
    st->dacts = malloc(sizeof(float *) * M);
    for (int m = 0; m < M; m++) {
        st->acts[m] = calloc(st->nacts, sizeof(float));
        st->dacts[m] = calloc(st->nacts, sizeof(float));
    }
    return st;
}

size_t stage_act_len(const Stage *st) { return (size_t)st->d.B * st->d.T * st->d.C; }
size_t stage_num_params(const Stage *st) { return st->n; }
float *stage_grads(Stage *st) { return st->grads; }
float *stage_params(Stage *st) { return st->params; }

// wte: the first stage's embedding and the last's head. Every rank joins its sum (zeros elsewhere).
void stage_tied(const Stage *st, size_t *off, size_t *len) { *off = 0; *len = (size_t)st->d.V * st->d.C; }

static size_t input_at(const Stage *st) {  // where the stage's input residual lives in a microbatch's buffer
    return st->l0 == 0 ? 0 : block_acts(&st->d, st->l0 - 1).residual3;
}

static size_t output_at(const Stage *st) { return st->l1 == 0 ? 0 : block_acts(&st->d, st->l1 - 1).residual3; }

void stage_forward(Stage *st, int m, const float *in, float *out) {
    const Dims *d = &st->d;
    size_t NC = (size_t)d->B * d->T * d->C, tok = (size_t)m * d->B * d->T;
    float *acts = st->acts[m];
    if (st->first) encoder_forward(acts, st->idx + tok, st->params, st->params + (size_t)d->V * d->C, d->B, d->T, d->C);
    else memcpy(acts + input_at(st), in, sizeof(float) * NC);
    for (int l = st->l0; l < st->l1; l++) block_forward(d, st->params, acts, l);
    if (st->last) head_forward(d, st->params, acts, st->targets + tok);
    else memcpy(out, acts + output_at(st), sizeof(float) * NC);
}

void stage_backward(Stage *st, int m, const float *dout, float *din) {
    const Dims *d = &st->d;
    size_t NC = (size_t)d->B * d->T * d->C, tok = (size_t)m * d->B * d->T;
    float *acts = st->acts[m], *dacts = st->dacts[m];
    memset(dacts, 0, sizeof(float) * st->nacts);
    if (st->last) head_backward(d, st->params, st->grads, acts, dacts, st->targets + tok, 1.0f / (float)st->M);
    else memcpy(dacts + output_at(st), dout, sizeof(float) * NC);
    for (int l = st->l1 - 1; l >= st->l0; l--) block_backward(d, st->params, st->grads, acts, dacts, l);
    if (st->first) encoder_backward(st->grads, st->grads + (size_t)d->V * d->C, dacts, st->idx + tok, d->B, d->T, d->C);
    else memcpy(din, dacts + input_at(st), sizeof(float) * NC);
}

// This stage's parameters: one contiguous run [a, b) (the first's starts with wte and wpe, the
// last's ends with lnf), plus the tied wte at [0, V C) that every rank sums.
static void own_range(const Stage *st, size_t *a, size_t *b) {
    const Dims *d = &st->d;
    size_t emb = (size_t)d->V * d->C + (size_t)d->T * d->C, blk = block_size(d->C);
    *a = st->first ? 0 : emb + st->l0 * blk;
    *b = st->last ? st->n : emb + st->l1 * blk;
}

void stage_zero_grad(Stage *st) {  // the rest of the buffer is never written: it stays zero
    size_t a, b, tied = (size_t)st->d.V * st->d.C;
    own_range(st, &a, &b);
    memset(st->grads + a, 0, sizeof(float) * (b - a));
    if (a > 0) memset(st->grads, 0, sizeof(float) * tied);  // the tied sum wrote it on every rank
}

static void sgd(Stage *st, size_t a, size_t b, float lr) {
    for (size_t i = a; i < b; i++) st->params[i] -= lr * st->grads[i];
}

void stage_update(Stage *st, float lr) {
    size_t a, b;
    own_range(st, &a, &b);
    sgd(st, a, b, lr);
    if (st->last && !st->first) sgd(st, 0, (size_t)st->d.V * st->d.C, lr);  // its copy of the tied wte
}

void stage_free(Stage *st) {
    for (int m = 0; m < st->M; m++) { free(st->acts[m]); free(st->dacts[m]); }
    free(st->acts); free(st->dacts); free(st->params); free(st->grads); free(st->idx); free(st->targets);
    free(st);
}
