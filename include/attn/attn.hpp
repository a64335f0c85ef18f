// attn/attn.hpp — the umbrella header: everything the library offers.
#pragma once

#include "attn/additive_attention.hpp"
#include "attn/causal_attention.hpp"
#include "attn/cross_attention.hpp"
#include "attn/errors.hpp"
#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/multihead_attention.hpp"
#include "attn/nn_multihead_attention.hpp"
#include "attn/optim.hpp"
#include "attn/safetensors.hpp"
#include "attn/seq2seq.hpp"  // GRU, Embedding, the encoder–decoder (attn why)
#include "attn/sdpa.hpp"
#include "attn/self_attention.hpp"
#include "attn/simplified_attention.hpp"
#include "attn/tensor.hpp"
#include "attn/threading.hpp"
