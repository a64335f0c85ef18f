"""attn as an attention backend of Hugging Face transformers.

    import attn.transformers                      # registers the backend "attn"
    model = AutoModel.from_pretrained(path, attn_implementation="attn")
    model = AutoModelForCausalLM.from_config(config, attn_implementation="attn")

Every attention call of the model then runs through
``attn.scaled_dot_product_attention`` (and so through ``torch.ops.attn.sdpa``):
encoders with padding (BERT), decoders with GQA and the KV cache of
``generate()`` (Llama, Qwen2), sliding windows (Mistral), logit softcapping
(Gemma 2) and attention sinks (gpt-oss's ``s_aux``).

What transformers passes, and what attn makes of it:

- ``scaling`` -> ``scale``; ``dropout`` -> ``dropout_p`` (transformers passes 0
  in eval mode); ``softcap`` -> ``softcap``; ``s_aux`` -> ``sinks``; fewer
  key/value heads than query heads -> ``enable_gqa`` (no repeated K/V).
- ``attention_mask is None``: the mask is ``is_causal`` alone (top-left, as
  transformers assumes for torch's SDPA; it leaves the mask out only where
  that is exact).
- a boolean mask (True = attend; the backend creates masks as for "sdpa"),
  or a float mask that only hides keys (0 / -inf or the lowest float, as
  transformers' "eager" masks are):
  attn looks for the structure transformers built it from — a causal
  diagonal (bottom-right: the queries are the newest tokens), a sliding
  window, key padding, and key slots no query sees (a static cache's
  unwritten tail) — and when the mask is exactly that, it passes
  ``is_causal`` / ``window`` / a ``[B, 1, 1, Lk]`` key-padding mask and crops
  the unseen keys, so the kernel skips the blocks the diagonal and the window
  hide. The check runs once per mask (every layer of a forward shares it).
- anything else (a float mask, a position bias, a pattern attn has no option
  for, or any mask while torch.compile traces, where the check would read
  data) goes to the kernel as the dense mask it is: slower, never wrong.

``output_attentions=True`` returns the attention weights (attn computes them
on its reference path).
"""

import weakref

import torch

try:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
except ImportError as e:  # pragma: no cover - depends on the installed transformers
    raise ImportError("attn.transformers needs transformers >= 4.53 (AttentionInterface and "
                      f"masking_utils.AttentionMaskInterface): {e}") from e

from ._sdpa import scaled_dot_product_attention

NAME = "attn"


def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                      **kwargs):
    """transformers' attention-function signature: query [B, Hq, Lq, D], key and
    value [B, Hkv, Lk, D]; returns (output [B, Lq, Hq, Dv], weights or None)."""
    position_bias = kwargs.get("position_bias")
    sliding_window = kwargs.get("sliding_window")
    softcap = kwargs.get("softcap") or 0.0
    options = dict(dropout_p=float(dropout), scale=scaling, softcap=float(softcap), sinks=kwargs.get("s_aux"),
                   enable_gqa=key.shape[1] != query.shape[1])
    need_weights = bool(kwargs.get("output_attentions", False))
    q_length = query.shape[2]
    causal_module = is_causal if is_causal is not None else getattr(module, "is_causal", True)

    if position_bias is not None:  # T5-style additive bias: a dense float mask, as transformers' sdpa builds it
        from transformers.integrations.sdpa_attention import create_position_bias_mask
        attention_mask = create_position_bias_mask(position_bias, attention_mask,
                                                   attention_mask is None and causal_module and q_length > 1,
                                                   query, key)
        options.update(attn_mask=attention_mask)
    elif attention_mask is None:
        options.update(is_causal=bool(causal_module and q_length > 1))
    else:
        window_left = sliding_window - 1 if (sliding_window and causal_module) else None
        structure = _mask_structure(attention_mask, q_length, key.shape[2], bool(causal_module), window_left)
        if structure is None:
            options.update(attn_mask=attention_mask)
        else:
            keys_end, padding, causal = structure
            if keys_end < key.shape[2]:  # slots no query sees: a view of the rest, no copy
                key, value = key[:, :, :keys_end], value[:, :, :keys_end]
            # The causal diagonal as a window's right edge (j - i <= 0): unlike
            # is_causal (as in torch), a window goes together with a padding mask.
            left = -1 if window_left is None else window_left
            right = 0 if causal else -1
            options.update(attn_mask=padding, causal_alignment="bottom_right",
                           window=None if left == right == -1 else (left, right))

    result = scaled_dot_product_attention(query, key, value, return_weights=need_weights, **options)
    out, weights = result if need_weights else (result, None)
    return out.transpose(1, 2).contiguous(), weights


# ---- the mask's structure ------------------------------------------------------------
#
# transformers builds a boolean mask as pattern(q, k) & padding(b, k): pattern
# is causal (and a sliding window) with the queries as the newest tokens, or
# all-true for encoders. From the mask alone:
#   seen[b, k] = any over rows of mask[b, :, k]
# is the padding wherever the mask has that form (a padded key is seen by no
# row; a key the pattern hides from every row is hidden either way), and
#   mask == pattern & seen
# is then an exact test of the form. Keys no row of any batch sees at the end
# (a static cache's empty slots) are cropped first, so the queries are the
# last Lq of the keys that remain: the bottom-right diagonal.

_structure_cache = {}  # (id(mask), Lq, Lk, causal, window_left) -> (weakref, version, structure)


def _mask_structure(mask, q_length, k_length, causal, window_left):
    """(keys_end, padding [B, 1, 1, keys_end] bool or None, is_causal) when
    ``mask`` is exactly a causal/window pattern and key padding; else None.
    A float mask qualifies when it only hides (0 where a key is seen, -inf or
    the dtype's lowest value where not: transformers' "eager" masks)."""
    if (not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[1] != 1
            or tuple(mask.shape[2:]) != (q_length, k_length) or torch.compiler.is_compiling()
            or mask.requires_grad or not (mask.dtype == torch.bool or mask.is_floating_point())):
        return None
    key = (id(mask), q_length, k_length, causal, window_left)
    hit = _structure_cache.get(key)
    if hit is not None and hit[0]() is mask and hit[1] == mask._version:
        return hit[2]
    if mask.dtype == torch.bool:
        structure = _find_structure(mask[:, 0], q_length, causal, window_left)
    else:  # a float mask that only hides keys (eager's), read as the bool mask it stands for
        values = mask[:, 0]
        seen = values == 0
        only_hides = bool((seen | (values <= torch.finfo(mask.dtype).min)).all())
        structure = _find_structure(seen, q_length, causal, window_left) if only_hides else None
    for k in [k for k, v in _structure_cache.items() if v[0]() is None]:
        del _structure_cache[k]  # masks of earlier forwards
    _structure_cache[key] = (weakref.ref(mask), mask._version, structure)
    return structure


def _find_structure(mask, q_length, causal, window_left):
    seen = mask.any(dim=1)                                  # [B, Lk]
    seen_by_any = seen.any(dim=0).nonzero()
    if seen_by_any.numel() == 0:
        return None                                         # nothing visible: leave it to the dense path
    keys_end = int(seen_by_any[-1]) + 1
    if keys_end < q_length:
        return None                                         # not the newest-tokens layout
    mask, seen = mask[:, :, :keys_end], seen[:, :keys_end]
    position = torch.arange(q_length).unsqueeze(1) + (keys_end - q_length)   # each query's own key index
    key_index = torch.arange(keys_end).unsqueeze(0)
    pattern = torch.ones(q_length, keys_end, dtype=torch.bool)
    if causal:
        pattern &= key_index <= position
    if window_left is not None:
        pattern &= position - key_index <= window_left
    if not torch.equal(mask, pattern.unsqueeze(0) & seen.unsqueeze(1)):
        return None
    padding = None if bool(seen.all()) else seen[:, None, None, :]
    # One query row (decoding) sees every key up to itself: causal changes nothing there.
    return keys_end, padding, causal and q_length > 1


AttentionInterface.register(NAME, attention_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)  # masks as for torch's SDPA: bool, True = attend
