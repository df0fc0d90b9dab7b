// MLP training step in C + BLAS: the "no framework" floor (registry names c.ref and c.step).
//
// Mirrors models/mlp/numpy_impl.py: <layer>_forward / <layer>_backward, then mlp_forward,
// mlp_backward, mlp_update. Every matrix product is one cblas_sgemm (OpenBLAS from the
// scipy-openblas32 wheel, whose symbols carry the scipy_ prefix); bias, ReLU, softmax and
// cross-entropy are plain loops. All arrays are row-major float32, owned by the caller
// (NumPy), so the C side allocates nothing.
//
// Shapes: B batch, D input, H hidden width, L hidden layers, C classes; n = L + 1 linear
// layers, layer i maps in_i -> out_i with in_0 = D, in_i = H, out_{n-1} = C, out_i = H.
// params = [W0 (D, H), b0 (H), W1 (H, H), b1 (H), ..., W_{n-1} (H, C), b_{n-1} (C)], grads alike.
// acts   = [z_0 (B, out_0), ..., z_{n-1} (B, C), probs (B, C), dlogits (B, C), dh_0 (B, H), ...,
//           dh_{n-2} (B, H)]; z_i holds the ReLU output for hidden layers (in place).

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#define sgemm scipy_cblas_sgemm
#define saxpy scipy_cblas_saxpy

typedef struct {
    int B, D, H, L, C;
} Dims;

static int layer_in(const Dims *d, int i) { return i == 0 ? d->D : d->H; }
static int layer_out(const Dims *d, int i) { return i == d->L ? d->C : d->H; }

// out (B, OC) = inp (B, IC) @ W (IC, OC) + b (OC)
static void linear_forward(float *out, const float *inp, const float *W, const float *b,
                           int B, int IC, int OC) {
    for (int r = 0; r < B; r++) memcpy(out + (size_t)r * OC, b, sizeof(float) * OC);  // (B, OC) <- b
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, OC, IC, 1.0f, inp, IC, W, OC, 1.0f, out, OC);
}

// dW (IC, OC) = inp^T @ dout; db (OC) = sum over rows of dout; dinp (B, IC) = dout @ W^T (if wanted)
static void linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                            const float *W, int B, int IC, int OC) {
    sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, B, 1.0f, inp, IC, dout, OC, 0.0f, dW, OC);
    memset(db, 0, sizeof(float) * OC);
    for (int r = 0; r < B; r++) {
        const float *row = dout + (size_t)r * OC;  // (OC)
        for (int j = 0; j < OC; j++) db[j] += row[j];
    }
    if (dinp) sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, IC, OC, 1.0f, dout, OC, W, OC, 0.0f, dinp, IC);
}

// h = max(z, 0), in place (B * H values)
static void relu_forward(float *h, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = h[i] > 0.0f ? h[i] : 0.0f;
}

// dh *= (h > 0), in place
static void relu_backward(float *dh, const float *h, size_t n) {
    for (size_t i = 0; i < n; i++) dh[i] = h[i] > 0.0f ? dh[i] : 0.0f;
}

// probs (B, C) = softmax(logits (B, C)); returns mean cross-entropy against y (B)
static float softmax_xent_forward(float *probs, const float *logits, const int64_t *y, int B, int C) {
    double loss = 0.0;
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * C;  // (C)
        float *p = probs + (size_t)r * C;         // (C)
        float m = z[0];
        for (int j = 1; j < C; j++) m = z[j] > m ? z[j] : m;
        float s = 0.0f;
        for (int j = 0; j < C; j++) { p[j] = expf(z[j] - m); s += p[j]; }
        for (int j = 0; j < C; j++) p[j] /= s;
        loss -= log((double)p[y[r]]);
    }
    return (float)(loss / B);
}

// dlogits (B, C) = (probs - onehot(y)) / B
static void softmax_xent_backward(float *dlogits, const float *probs, const int64_t *y, int B, int C) {
    const float inv_b = 1.0f / (float)B;
    for (int r = 0; r < B; r++) {
        for (int j = 0; j < C; j++) dlogits[(size_t)r * C + j] = probs[(size_t)r * C + j];
        dlogits[(size_t)r * C + y[r]] -= 1.0f;
        for (int j = 0; j < C; j++) dlogits[(size_t)r * C + j] *= inv_b;
    }
}

// Offsets of each layer's W and b in params (and grads), and of z_i and dh_i in acts.
typedef struct {
    size_t W[257], b[257], z[257], dh[257], probs, dlogits;
} Layout;

static int layout(const Dims *d, Layout *o) {
    if (d->L < 1 || d->L > 256) return -1;
    size_t p = 0, a = 0;
    for (int i = 0; i <= d->L; i++) {
        o->W[i] = p; p += (size_t)layer_in(d, i) * layer_out(d, i);
        o->b[i] = p; p += (size_t)layer_out(d, i);
        o->z[i] = a; a += (size_t)d->B * layer_out(d, i);
    }
    o->probs = a; a += (size_t)d->B * d->C;
    o->dlogits = a; a += (size_t)d->B * d->C;
    for (int i = 0; i < d->L; i++) { o->dh[i] = a; a += (size_t)d->B * d->H; }
    return 0;
}

static float mlp_forward(const Dims *d, const Layout *o, const float *params, float *acts,
                         const float *x, const int64_t *y) {
    const float *h = x;  // (B, D)
    for (int i = 0; i <= d->L; i++) {
        float *z = acts + o->z[i];  // (B, out_i)
        linear_forward(z, h, params + o->W[i], params + o->b[i], d->B, layer_in(d, i), layer_out(d, i));
        if (i < d->L) relu_forward(z, (size_t)d->B * d->H);  // (B, H), in place
        h = z;
    }
    return softmax_xent_forward(acts + o->probs, acts + o->z[d->L], y, d->B, d->C);
}

static void mlp_backward(const Dims *d, const Layout *o, const float *params, float *grads, float *acts,
                         const float *x, const int64_t *y) {
    float *dz = acts + o->dlogits;  // (B, C)
    softmax_xent_backward(dz, acts + o->probs, y, d->B, d->C);
    for (int i = d->L; i >= 0; i--) {
        const float *inp = i == 0 ? x : acts + o->z[i - 1];  // (B, in_i): ReLU output of layer i-1
        float *dinp = i == 0 ? NULL : acts + o->dh[i - 1];   // the data needs no gradient
        linear_backward(dinp, grads + o->W[i], grads + o->b[i], dz, inp, params + o->W[i],
                        d->B, layer_in(d, i), layer_out(d, i));
        if (i > 0) {
            relu_backward(dinp, inp, (size_t)d->B * d->H);  // (B, H)
            dz = dinp;
        }
    }
}

// params -= lr * grads
static void mlp_update(float *params, const float *grads, size_t n, float lr) {
    saxpy((blasint)n, -lr, grads, 1, params, 1);
}

// k training steps with no Python in between; losses (k) receives each step's loss.
// dims = {B, D, H, L, C}. Returns 0, or -1 for dimensions it cannot lay out.
int mlp_train(const int *dims, float lr, float *params, float *grads, float *acts,
              const float *x, const int64_t *y, int k, float *losses) {
    Dims d = {dims[0], dims[1], dims[2], dims[3], dims[4]};
    Layout o;
    if (layout(&d, &o) != 0) return -1;
    size_t n_params = o.b[d.L] + (size_t)d.C;
    for (int s = 0; s < k; s++) {
        losses[s] = mlp_forward(&d, &o, params, acts, x, y);
        mlp_backward(&d, &o, params, grads, acts, x, y);
        mlp_update(params, grads, n_params, lr);
    }
    return 0;
}
