// Tiny GPT training step in C + BLAS: the "no framework" floor (registry names c.ref and c.step).
//
// In the style of llm.c's train_gpt2.c and mirroring models/gpt/numpy_impl.py: one
// <layer>_forward / <layer>_backward pair per layer, then gpt_forward, gpt_backward, gpt_update.
// Matrix products go through cblas_sgemm (OpenBLAS from the scipy-openblas32 wheel, symbols
// prefixed scipy_); the elementwise layers are plain loops. The caller (NumPy) owns every array:
// parameters, gradients, AdamW moments, one activation buffer and one activation-gradient buffer,
// so nothing is allocated inside a step.
//
// Shapes: B batch, T sequence, C width, NH heads, hs = C / NH, V vocabulary, L blocks, N = B * T.
// Parameters, in models/gpt/model.py param_names order, linear weights stored (in, out):
//   wte (V, C), wpe (T, C), then per block ln1_w (C), ln1_b (C), attn_w (C, 3C), attn_b (3C),
//   attn_proj_w (C, C), attn_proj_b (C), ln2_w (C), ln2_b (C), fc_w (C, 4C), fc_b (4C),
//   fc_proj_w (4C, C), fc_proj_b (C); lnf_w (C), lnf_b (C). The head is tied to wte.

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#define sgemm scipy_cblas_sgemm

typedef struct {
    int B, T, C, L, NH, V, gemm_attention;
} Dims;

// ---------------------------------------------------------------------------------------------
// Layout of the parameters (and gradients, moments) and of the activations.

typedef struct {
    size_t ln1w, ln1b, attnw, attnb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
} BlockParams;

static size_t block_size(int C) { return 12 * (size_t)C * C + 13 * (size_t)C; }

static BlockParams block_params(const Dims *d, int l) {
    size_t C = d->C, o = (size_t)d->V * C + (size_t)d->T * C + l * block_size(d->C);
    BlockParams p;
    p.ln1w = o; o += C;
    p.ln1b = o; o += C;
    p.attnw = o; o += C * 3 * C;
    p.attnb = o; o += 3 * C;
    p.projw = o; o += C * C;
    p.projb = o; o += C;
    p.ln2w = o; o += C;
    p.ln2b = o; o += C;
    p.fcw = o; o += C * 4 * C;
    p.fcb = o; o += 4 * C;
    p.fcprojw = o; o += 4 * C * C;
    p.fcprojb = o;
    return p;
}

static size_t lnf_w(const Dims *d) { return (size_t)d->V * d->C + (size_t)d->T * d->C + d->L * block_size(d->C); }

size_t gpt_num_params(const int *dims) {
    Dims d = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]};
    return lnf_w(&d) + 2 * (size_t)d.C;
}

typedef struct {  // offsets into the activation buffer (the gradient buffer has the same layout)
    size_t ln1, ln1_mean, ln1_rstd, qkv, att, atty, attproj, residual2, ln2, ln2_mean, ln2_rstd, fch, fch_gelu,
        fcproj, residual3;
} BlockActs;

static size_t block_acts_size(const Dims *d) {
    size_t N = (size_t)d->B * d->T, C = d->C;
    return 18 * N * C + 4 * N + (size_t)d->B * d->NH * d->T * d->T;
}

static BlockActs block_acts(const Dims *d, int l) {
    size_t N = (size_t)d->B * d->T, C = d->C, o = N * C + l * block_acts_size(d);  // after `encoded`
    BlockActs a;
    a.ln1 = o; o += N * C;
    a.ln1_mean = o; o += N;
    a.ln1_rstd = o; o += N;
    a.qkv = o; o += N * 3 * C;
    a.att = o; o += (size_t)d->B * d->NH * d->T * d->T;
    a.atty = o; o += N * C;
    a.attproj = o; o += N * C;
    a.residual2 = o; o += N * C;
    a.ln2 = o; o += N * C;
    a.ln2_mean = o; o += N;
    a.ln2_rstd = o; o += N;
    a.fch = o; o += N * 4 * C;
    a.fch_gelu = o; o += N * 4 * C;
    a.fcproj = o; o += N * C;
    a.residual3 = o;
    return a;
}

typedef struct {
    size_t lnf, lnf_mean, lnf_rstd, logits, scratch, total;
} FinalActs;

static FinalActs final_acts(const Dims *d) {
    size_t N = (size_t)d->B * d->T, o = N * d->C + d->L * block_acts_size(d);
    FinalActs f;
    f.lnf = o; o += N * d->C;
    f.lnf_mean = o; o += N;
    f.lnf_rstd = o; o += N;
    f.logits = o; o += N * d->V;  // the probabilities, in place
    f.scratch = o; o += (size_t)d->T * d->T;  // one (T, T) matrix for the attention backward
    f.total = o;
    return f;
}

size_t gpt_num_acts(const int *dims) {
    Dims d = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]};
    return final_acts(&d).total;
}

// ---------------------------------------------------------------------------------------------
// Layers. Backward functions accumulate (+=) into their input gradients, as in llm.c.

// out (B, T, C) = wte[idx] + wpe[t]
static void encoder_forward(float *out, const int64_t *idx, const float *wte, const float *wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *we = wte + idx[b * T + t] * (size_t)C, *pe = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
        }
}

static void encoder_backward(float *dwte, float *dwpe, const float *dout, const int64_t *idx, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dwe = dwte + idx[b * T + t] * (size_t)C, *dpe = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) { dwe[i] += d[i]; dpe[i] += d[i]; }
        }
}

// out (N, C) = (inp - mean) * rstd * w + b, two-pass statistics (no cancellation)
static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              size_t N, int C) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float m = 0.0f, v = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        for (int i = 0; i < C; i++) { float xc = x[i] - m; v += xc * xc; }
        float s = 1.0f / sqrtf(v / C + 1e-5f);
        float *o = out + n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                               const float *mean, const float *rstd, size_t N, int C) {
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * C, *x = inp + n * C;
        float m1 = 0.0f, m2 = 0.0f;  // mean of dxhat, mean of dxhat * xhat
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - mean[n]) * rstd[n], dxhat = d[i] * w[i];
            m1 += dxhat;
            m2 += dxhat * xhat;
        }
        m1 /= C;
        m2 /= C;
        float *di = dinp + n * C;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - mean[n]) * rstd[n];
            db[i] += d[i];
            dw[i] += d[i] * xhat;
            di[i] += rstd[n] * (d[i] * w[i] - m1 - xhat * m2);
        }
    }
}

// out (N, OC) = inp (N, IC) @ w (IC, OC) + bias (OC)
static void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IC, int OC) {
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, IC, 1.0f, inp, IC, w, OC, 1.0f, out, OC);
}

// dinp (N, IC) += dout @ w^T; dw (IC, OC) += inp^T @ dout; dbias (OC) += column sums of dout
static void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                            int N, int IC, int OC) {
    sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, IC, OC, 1.0f, dout, OC, w, OC, 1.0f, dinp, IC);
    sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, N, 1.0f, inp, IC, dout, OC, 1.0f, dw, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) dbias[o] += dout[(size_t)n * OC + o];
}

// Row t of att (T, T): softmax of its scores over keys 0..t (scaled before), zero after t.
static void causal_softmax_row(float *row, int t, int T) {
    float m = row[0];
    for (int j = 1; j <= t; j++) m = row[j] > m ? row[j] : m;
    float s = 0.0f;
    for (int j = 0; j <= t; j++) { row[j] = expf(row[j] - m); s += row[j]; }
    for (int j = 0; j <= t; j++) row[j] /= s;
    for (int j = t + 1; j < T; j++) row[j] = 0.0f;
}

// Causal multi-head attention. qkv (B, T, 3C) -> out (B, T, C); att (B, NH, T, T) probabilities.
// Per (batch, head): scores = Q K^T / sqrt(hs), causal softmax, out = P V; with gemm_attention the
// two products are sgemm calls on strided views of qkv, else plain loops over the causal half.
static void attention_forward(float *out, float *att, const float *qkv, const Dims *d) {
    int T = d->T, C = d->C, NH = d->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * 3 * C + h * hs, *k = q + C, *v = q + 2 * C;  // rows of stride 3C
            float *a = att + ((size_t)b * NH + h) * T * T;
            float *y = out + (size_t)b * T * C + h * hs;  // rows of stride C
            if (d->gemm_attention) {
                sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, 3 * C, k, 3 * C, 0.0f, a, T);
            } else {
                for (int t = 0; t < T; t++)
                    for (int j = 0; j <= t; j++) {
                        float s = 0.0f;
                        for (int i = 0; i < hs; i++) s += q[(size_t)t * 3 * C + i] * k[(size_t)j * 3 * C + i];
                        a[(size_t)t * T + j] = s * scale;
                    }
            }
            for (int t = 0; t < T; t++) causal_softmax_row(a + (size_t)t * T, t, T);
            if (d->gemm_attention) {
                sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, 3 * C, 0.0f, y, C);
            } else {
                for (int t = 0; t < T; t++) {
                    float *yt = y + (size_t)t * C;
                    for (int i = 0; i < hs; i++) yt[i] = 0.0f;
                    for (int j = 0; j <= t; j++) {
                        float p = a[(size_t)t * T + j];
                        for (int i = 0; i < hs; i++) yt[i] += p * v[(size_t)j * 3 * C + i];
                    }
                }
            }
        }
}

// dout (B, T, C) -> dqkv (B, T, 3C) +=; scratch: one (T, T) matrix.
// dP = dY V^T; dV = P^T dY; dS = P * (dP - rowsum(dP * P)) / sqrt(hs); dQ = dS K; dK = dS^T Q.
static void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *att,
                               const Dims *d) {
    int T = d->T, C = d->C, NH = d->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * 3 * C + h * hs, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * 3 * C + h * hs, *dk = dq + C, *dv = dq + 2 * C;
            const float *p = att + ((size_t)b * NH + h) * T * T, *dy = dout + (size_t)b * T * C + h * hs;
            float *ds = scratch;  // (T, T)
            sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, v, 3 * C, 0.0f, ds, T);
            sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, dy, C, 1.0f, dv, 3 * C);
            for (int t = 0; t < T; t++) {
                float *r = ds + (size_t)t * T;
                const float *pr = p + (size_t)t * T;
                float dot = 0.0f;
                for (int j = 0; j <= t; j++) dot += r[j] * pr[j];
                for (int j = 0; j <= t; j++) r[j] = pr[j] * (r[j] - dot) * scale;
                for (int j = t + 1; j < T; j++) r[j] = 0.0f;
            }
            sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, ds, T, k, 3 * C, 1.0f, dq, 3 * C);
            sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, ds, T, q, 3 * C, 1.0f, dk, 3 * C);
        }
}

#define GELU_S 0.7978845608028654f  // sqrt(2 / pi)

// tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
static void gelu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_S * (x + 0.044715f * x * x * x)));
    }
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], t = tanhf(GELU_S * (x + 0.044715f * x * x * x));
        float du = GELU_S * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
}

static void residual_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void residual_backward(float *da, float *db, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) { da[i] += dout[i]; db[i] += dout[i]; }
}

// probs (N, V) = softmax(logits), in place; returns the mean cross-entropy against targets (N)
static float crossentropy_softmax_forward(float *probs, const int64_t *targets, size_t N, int V) {
    double loss = 0.0;
    for (size_t n = 0; n < N; n++) {
        float *p = probs + n * V;
        float m = p[0];
        for (int j = 1; j < V; j++) m = p[j] > m ? p[j] : m;
        float s = 0.0f;
        for (int j = 0; j < V; j++) { p[j] = expf(p[j] - m); s += p[j]; }
        for (int j = 0; j < V; j++) p[j] /= s;
        loss -= log((double)p[targets[n]]);
    }
    return (float)(loss / N);
}

// dlogits (N, V) = (probs - onehot(targets)) / N
static void crossentropy_softmax_backward(float *dlogits, const float *probs, const int64_t *targets, size_t N, int V) {
    float inv = 1.0f / (float)N;
    for (size_t n = 0; n < N; n++) {
        for (int j = 0; j < V; j++) dlogits[n * V + j] = probs[n * V + j] * inv;
        dlogits[n * V + targets[n]] -= inv;
    }
}

// ---------------------------------------------------------------------------------------------
// The model: forward (loss), backward (gradients), AdamW update.

// Block l's forward: its input residual is `encoded` (l = 0) or block l - 1's residual3.
static void block_forward(const Dims *d, const float *params, float *acts, int l) {
    size_t N = (size_t)d->B * d->T, C = d->C;
    BlockParams p = block_params(d, l);
    BlockActs a = block_acts(d, l);
    const float *residual = l == 0 ? acts : acts + block_acts(d, l - 1).residual3;
    layernorm_forward(acts + a.ln1, acts + a.ln1_mean, acts + a.ln1_rstd, residual, params + p.ln1w, params + p.ln1b, N,
                      d->C);
    matmul_forward(acts + a.qkv, acts + a.ln1, params + p.attnw, params + p.attnb, N, d->C, 3 * d->C);
    attention_forward(acts + a.atty, acts + a.att, acts + a.qkv, d);
    matmul_forward(acts + a.attproj, acts + a.atty, params + p.projw, params + p.projb, N, d->C, d->C);
    residual_forward(acts + a.residual2, residual, acts + a.attproj, N * C);
    layernorm_forward(acts + a.ln2, acts + a.ln2_mean, acts + a.ln2_rstd, acts + a.residual2, params + p.ln2w,
                      params + p.ln2b, N, d->C);
    matmul_forward(acts + a.fch, acts + a.ln2, params + p.fcw, params + p.fcb, N, d->C, 4 * d->C);
    gelu_forward(acts + a.fch_gelu, acts + a.fch, N * 4 * C);
    matmul_forward(acts + a.fcproj, acts + a.fch_gelu, params + p.fcprojw, params + p.fcprojb, N, 4 * d->C, d->C);
    residual_forward(acts + a.residual3, acts + a.residual2, acts + a.fcproj, N * C);
}

// The final LayerNorm, the head tied to wte and the loss, from the last block's residual3.
static float head_forward(const Dims *d, const float *params, float *acts, const int64_t *targets) {
    size_t N = (size_t)d->B * d->T, C = d->C;
    FinalActs f = final_acts(d);
    size_t lw = lnf_w(d);
    const float *residual = d->L ? acts + block_acts(d, d->L - 1).residual3 : acts;
    layernorm_forward(acts + f.lnf, acts + f.lnf_mean, acts + f.lnf_rstd, residual, params + lw, params + lw + C, N,
                      d->C);
    float *logits = acts + f.logits;  // (N, V) = lnf (N, C) @ wte^T: the head tied to the embedding
    sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, d->V, d->C, 1.0f, acts + f.lnf, d->C, params, d->C, 0.0f,
          logits, d->V);
    return crossentropy_softmax_forward(logits, targets, N, d->V);
}

static float gpt_forward(const Dims *d, const float *params, float *acts, const int64_t *idx, const int64_t *targets) {
    encoder_forward(acts, idx, params, params + (size_t)d->V * d->C, d->B, d->T, d->C);  // `encoded` at offset 0
    for (int l = 0; l < d->L; l++) block_forward(d, params, acts, l);
    return head_forward(d, params, acts, targets);
}

// The head's backward, the loss's gradient scaled by `scale` (1: the mean over this batch): dwte
// and dlnf accumulate into grads, the last residual's gradient into dacts.
static void head_backward(const Dims *d, const float *params, float *grads, const float *acts, float *dacts,
                          const int64_t *targets, float scale) {
    size_t N = (size_t)d->B * d->T, C = d->C;
    FinalActs f = final_acts(d);
    float *dlogits = dacts + f.logits;
    crossentropy_softmax_backward(dlogits, acts + f.logits, targets, N, d->V);
    if (scale != 1.0f)
        for (size_t i = 0; i < N * d->V; i++) dlogits[i] *= scale;
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, d->C, d->V, 1.0f, dlogits, d->V, params, d->C, 1.0f,
          dacts + f.lnf, d->C);  // dlnf (N, C) += dlogits @ wte
    sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d->V, d->C, (int)N, 1.0f, dlogits, d->V, acts + f.lnf, d->C, 1.0f,
          grads, d->C);  // dwte (V, C) += dlogits^T @ lnf
    size_t lw = lnf_w(d);
    const float *last = d->L ? acts + block_acts(d, d->L - 1).residual3 : acts;
    float *dlast = d->L ? dacts + block_acts(d, d->L - 1).residual3 : dacts;
    layernorm_backward(dlast, grads + lw, grads + lw + C, dacts + f.lnf, last, params + lw, acts + f.lnf_mean,
                       acts + f.lnf_rstd, N, d->C);
}

// Block l's backward, from the gradient of its residual3 to that of its input residual.
static void block_backward(const Dims *d, const float *params, float *grads, const float *acts, float *dacts, int l) {
    size_t N = (size_t)d->B * d->T, C = d->C;
    FinalActs f = final_acts(d);
    BlockParams p = block_params(d, l);
    BlockActs a = block_acts(d, l);
    const float *residual = l == 0 ? acts : acts + block_acts(d, l - 1).residual3;
    float *dresidual = l == 0 ? dacts : dacts + block_acts(d, l - 1).residual3;
    residual_backward(dacts + a.residual2, dacts + a.fcproj, dacts + a.residual3, N * C);
    matmul_backward(dacts + a.fch_gelu, grads + p.fcprojw, grads + p.fcprojb, dacts + a.fcproj, acts + a.fch_gelu,
                    params + p.fcprojw, N, 4 * d->C, d->C);
    gelu_backward(dacts + a.fch, acts + a.fch, dacts + a.fch_gelu, N * 4 * C);
    matmul_backward(dacts + a.ln2, grads + p.fcw, grads + p.fcb, dacts + a.fch, acts + a.ln2, params + p.fcw, N, d->C,
                    4 * d->C);
    layernorm_backward(dacts + a.residual2, grads + p.ln2w, grads + p.ln2b, dacts + a.ln2, acts + a.residual2,
                       params + p.ln2w, acts + a.ln2_mean, acts + a.ln2_rstd, N, d->C);
    residual_backward(dresidual, dacts + a.attproj, dacts + a.residual2, N * C);
    matmul_backward(dacts + a.atty, grads + p.projw, grads + p.projb, dacts + a.attproj, acts + a.atty, params + p.projw,
                    N, d->C, d->C);
    attention_backward(dacts + a.qkv, dacts + f.scratch, dacts + a.atty, acts + a.qkv, acts + a.att, d);
    matmul_backward(dacts + a.ln1, grads + p.attnw, grads + p.attnb, dacts + a.qkv, acts + a.ln1, params + p.attnw, N,
                    d->C, 3 * d->C);
    layernorm_backward(dresidual, grads + p.ln1w, grads + p.ln1b, dacts + a.ln1, residual, params + p.ln1w,
                       acts + a.ln1_mean, acts + a.ln1_rstd, N, d->C);
}

static void gpt_backward(const Dims *d, const float *params, float *grads, const float *acts, float *dacts,
                         const int64_t *idx, const int64_t *targets) {
    memset(grads, 0, sizeof(float) * (lnf_w(d) + 2 * (size_t)d->C));
    memset(dacts, 0, sizeof(float) * final_acts(d).total);
    head_backward(d, params, grads, acts, dacts, targets, 1.0f);
    for (int l = d->L - 1; l >= 0; l--) block_backward(d, params, grads, acts, dacts, l);
    encoder_backward(grads, grads + (size_t)d->V * d->C, dacts, idx, d->B, d->T, d->C);
}

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamW;

// One AdamW step (t from 1) over one tensor, as torch.optim.AdamW: decoupled decay, then the
// bias-corrected moment update.
static void adamw_tensor(float *p, const float *g, float *m, float *v, size_t n, int decay, const AdamW *o, int t) {
    float bc1 = 1.0f - (float)pow(o->beta1, t), bc2 = 1.0f - (float)pow(o->beta2, t);
    float step = o->lr / bc1, keep = decay ? 1.0f - o->lr * o->weight_decay : 1.0f;
    for (size_t i = 0; i < n; i++) {
        m[i] = o->beta1 * m[i] + (1.0f - o->beta1) * g[i];
        v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g[i] * g[i];
        p[i] = p[i] * keep - step * m[i] / (sqrtf(v[i] / bc2) + o->eps);
    }
}

// Weight decay on the matrices (embeddings and linear weights) only, as nanoGPT.
static void gpt_update(const Dims *d, float *params, const float *grads, float *m, float *v, const AdamW *o, int t) {
    size_t C = d->C, off = 0;
    size_t sizes[14] = {C, C, C * 3 * C, 3 * C, C * C, C, C, C, C * 4 * C, 4 * C, 4 * C * C, C};
    adamw_tensor(params, grads, m, v, (size_t)d->V * C, 1, o, t);  // wte
    off = (size_t)d->V * C;
    adamw_tensor(params + off, grads + off, m + off, v + off, (size_t)d->T * C, 1, o, t);  // wpe
    off += (size_t)d->T * C;
    for (int l = 0; l < d->L; l++)
        for (int i = 0; i < 12; i++) {
            int matrix = i == 2 || i == 4 || i == 8 || i == 10;
            adamw_tensor(params + off, grads + off, m + off, v + off, sizes[i], matrix, o, t);
            off += sizes[i];
        }
    adamw_tensor(params + off, grads + off, m + off, v + off, 2 * C, 0, o, t);  // lnf_w, lnf_b
}

// ---------------------------------------------------------------------------------------------
// Entry points (ctypes). dims = {B, T, C, L, NH, V, gemm_attention}; hyper = {lr, beta1, beta2,
// eps, weight_decay}; *t: AdamW steps done so far, advanced here.

// One forward and backward pass: the loss, and the gradients in `grads` (for the tests).
float gpt_forward_backward(const int *dims, const float *params, float *grads, float *acts, float *dacts,
                           const int64_t *idx, const int64_t *targets) {
    Dims d = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]};
    float loss = gpt_forward(&d, params, acts, idx, targets);
    gpt_backward(&d, params, grads, acts, dacts, idx, targets);
    return loss;
}

void gpt_adamw(const int *dims, const float *hyper, float *params, const float *grads, float *m, float *v, int *t) {
    Dims d = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]};
    AdamW o = {hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]};
    *t += 1;
    gpt_update(&d, params, grads, m, v, &o, *t);
}

// k training steps with no Python in between; losses (k) receives each step's loss.
int gpt_train(const int *dims, const float *hyper, float *params, float *grads, float *m, float *v, float *acts,
              float *dacts, const int64_t *idx, const int64_t *targets, int *t, int k, float *losses) {
    Dims d = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]};
    if (d.NH < 1 || d.C % d.NH) return -1;
    AdamW o = {hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]};
    for (int s = 0; s < k; s++) {
        losses[s] = gpt_forward(&d, params, acts, idx, targets);
        gpt_backward(&d, params, grads, acts, dacts, idx, targets);
        *t += 1;
        gpt_update(&d, params, grads, m, v, &o, *t);
    }
    return 0;
}
