// What the C pipeline driver (models/cpipe.c) needs of a model's stage: models/<model>/<model>_pipe.c.
// A stage holds the whole model's parameter and gradient buffers (in the model's param_names order,
// so a gradient sum over the ranks is the model's gradient) and touches only its own part.
#ifndef CPIPE_H
#define CPIPE_H

#include <stddef.h>

typedef struct Stage Stage;

// Stage s of S over M microbatches; dims as the model's c_dims; data: float32 parameters, then the
// batch (x, y) as models/<model>/pipeline.py c_data writes it. NULL with a message on error.
Stage *stage_new(const int *dims, int ndims, const char *data, int S, int s, int M);
size_t stage_act_len(const Stage *st);        // floats of one microbatch's activation between stages
size_t stage_num_params(const Stage *st);     // floats of the whole model's parameters
void stage_forward(Stage *st, int m, const float *in, float *out);     // in NULL on stage 0, out NULL on the last
void stage_backward(Stage *st, int m, const float *dout, float *din);  // dout NULL on the last, din NULL on stage 0
void stage_zero_grad(Stage *st);
float *stage_grads(Stage *st);                // the whole model's gradient buffer (zeros outside this stage)
float *stage_params(Stage *st);               // the whole model's parameter buffer
void stage_tied(const Stage *st, size_t *off, size_t *len);  // the parameter two stages hold (len 0: none)
void stage_update(Stage *st, float lr);      // SGD on this stage's parameters (the tied one included)
void stage_free(Stage *st);

#endif
