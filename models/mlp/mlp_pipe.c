// The MLP's pipeline stage for models/cpipe.c: stage s of S holds linear layers j0..j1 (as
// models/mlp/torch_impl.py pipeline_stages cuts them: numpy's array_split of the L + 1 layers),
// each followed by its ReLU but the model's last. Built from mlp.c's layers; the gradients
// accumulate over the microbatches (sgemm with beta 1).
//
// dims = {B, D, H, L, C}: the whole batch; a microbatch has b = B / M rows.
// data = float32 parameters [W0 (D, H), b0 (H), ..., W_L (H, C), b_L (C)], x (B, D) float32, y (B) int64.
#include <stdio.h>
#include <stdlib.h>

#include "../cpipe.h"
#include "mlp.c"

struct Stage {
    Dims d;   // B = b, the microbatch's rows
    Layout o; // offsets of the whole model's parameters (acts offsets unused)
    int j0, j1, last, M;
    size_t n;
    float *params, *grads, *x;  // x (B, D): the whole batch
    int64_t *y;                 // (B)
    float **h, **dh;            // per microbatch: each layer's output (b, out_j) for j0..j1, and its gradient
    const float **in;           // per microbatch: the received input (the driver's buffer, kept until the backward)
    float **probs;              // per microbatch: (b, C) on the last stage
};

Stage *stage_new(const int *dims, int ndims, const char *data, int S, int s, int M) {
    if (ndims != 5 || dims[0] % M) { fprintf(stderr, "mlp stage: want dims B D H L C with M | B\n"); return NULL; }
    Stage *st = calloc(1, sizeof(Stage));
    Dims whole = {dims[0], dims[1], dims[2], dims[3], dims[4]};
    st->d = whole;
    st->d.B = dims[0] / M;
    st->M = M;
    layout(&whole, &st->o);
    int n = whole.L + 1, base = n / S, extra = n % S;  // array_split: the first `extra` stages one layer more
    st->j0 = s * base + (s < extra ? s : extra);
    st->j1 = st->j0 + base + (s < extra) - 1;
    st->last = st->j1 == whole.L;
    st->n = st->o.b[whole.L] + whole.C;
    st->params = malloc(sizeof(float) * st->n);
    st->grads = calloc(st->n, sizeof(float));
    st->x = malloc(sizeof(float) * (size_t)whole.B * whole.D);
    st->y = malloc(sizeof(int64_t) * whole.B);
    FILE *f = fopen(data, "rb");
    if (!f || fread(st->params, sizeof(float), st->n, f) != st->n ||
        fread(st->x, sizeof(float), (size_t)whole.B * whole.D, f) != (size_t)whole.B * whole.D ||
        fread(st->y, sizeof(int64_t), whole.B, f) != (size_t)whole.B) {
        fprintf(stderr, "mlp stage: cannot read %s\n", data);
        return NULL;
    }
    fclose(f);
    st->h = malloc(sizeof(float *) * M);
    st->dh = malloc(sizeof(float *) * M);
    st->in = calloc(M, sizeof(float *));
    size_t per = 0;
    for (int j = st->j0; j <= st->j1; j++) per += (size_t)st->d.B * layer_out(&st->d, j);
    for (int m = 0; m < M; m++) { st->h[m] = malloc(sizeof(float) * per); st->dh[m] = malloc(sizeof(float) * per); }
    st->probs = malloc(sizeof(float *) * M);
    for (int m = 0; m < M; m++) st->probs[m] = malloc(sizeof(float) * (size_t)st->d.B * whole.C);
    return st;
}

size_t stage_act_len(const Stage *st) { return (size_t)st->d.B * st->d.H; }
size_t stage_num_params(const Stage *st) { return st->n; }
float *stage_grads(Stage *st) { return st->grads; }
float *stage_params(Stage *st) { return st->params; }
void stage_tied(const Stage *st, size_t *off, size_t *len) { (void)st; *off = 0; *len = 0; }

static float *out_of(Stage *st, float *base, int j) {  // layer j's slot in a microbatch's buffer
    size_t off = 0;
    for (int k = st->j0; k < j; k++) off += (size_t)st->d.B * layer_out(&st->d, k);
    return base + off;
}

void stage_forward(Stage *st, int m, const float *in, float *out) {
    const Dims *d = &st->d;
    const float *h = in ? in : st->x + (size_t)m * d->B * d->D;  // (b, in_j0)
    st->in[m] = h;
    for (int j = st->j0; j <= st->j1; j++) {
        float *z = out_of(st, st->h[m], j);  // (b, out_j)
        linear_forward(z, h, st->params + st->o.W[j], st->params + st->o.b[j], d->B, layer_in(d, j), layer_out(d, j));
        if (j < d->L) relu_forward(z, (size_t)d->B * d->H);
        h = z;
    }
    if (out) memcpy(out, h, sizeof(float) * (size_t)d->B * d->H);
    else softmax_xent_forward(st->probs[m], h, st->y + (size_t)m * d->B, d->B, d->C);
}

void stage_backward(Stage *st, int m, const float *dout, float *din) {
    const Dims *d = &st->d;
    float *dz = out_of(st, st->dh[m], st->j1);
    if (st->last) {  // the mean over the whole batch: this microbatch's mean / M
        softmax_xent_backward(dz, st->probs[m], st->y + (size_t)m * d->B, d->B, d->C);
        for (size_t i = 0; i < (size_t)d->B * d->C; i++) dz[i] /= (float)st->M;
    } else {  // the gradient of the ReLU output that was sent
        memcpy(dz, dout, sizeof(float) * (size_t)d->B * d->H);
        relu_backward(dz, out_of(st, st->h[m], st->j1), (size_t)d->B * d->H);
    }
    for (int j = st->j1; j >= st->j0; j--) {
        int IC = layer_in(d, j), OC = layer_out(d, j);
        const float *inp = j > st->j0 ? out_of(st, st->h[m], j - 1) : st->in[m];  // (b, IC)
        float *dinp = j > st->j0 ? out_of(st, st->dh[m], j - 1) : din;
        sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, d->B, 1.0f, inp, IC, dz, OC, 1.0f,
              st->grads + st->o.W[j], OC);  // dW (IC, OC) += inp^T dz
        float *db = st->grads + st->o.b[j];
        for (int r = 0; r < d->B; r++)
            for (int k = 0; k < OC; k++) db[k] += dz[(size_t)r * OC + k];
        if (dinp) {
            sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->B, IC, OC, 1.0f, dz, OC, st->params + st->o.W[j], OC,
                  0.0f, dinp, IC);  // (b, IC) = dz W^T
            if (j > st->j0) relu_backward(dinp, inp, (size_t)d->B * d->H);
        }
        dz = dinp;
    }
}

// This stage's layers: one contiguous run [a, b) of the buffer (the rest of its gradient stays zero).
static void own_range(const Stage *st, size_t *a, size_t *b) {
    *a = st->o.W[st->j0];
    *b = st->o.b[st->j1] + layer_out(&st->d, st->j1);
}

void stage_zero_grad(Stage *st) {
    size_t a, b;
    own_range(st, &a, &b);
    memset(st->grads + a, 0, sizeof(float) * (b - a));
}

void stage_update(Stage *st, float lr) {
    size_t a, b;
    own_range(st, &a, &b);
    saxpy((blasint)(b - a), -lr, st->grads + a, 1, st->params + a, 1);
}

void stage_free(Stage *st) {
    for (int m = 0; m < st->M; m++) { free(st->h[m]); free(st->dh[m]); free(st->probs[m]); }
    free(st->h); free(st->dh); free(st->in); free(st->probs); free(st->params); free(st->grads); free(st->x); free(st->y);
    free(st);
}
