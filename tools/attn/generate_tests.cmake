# tools/attn/generate_tests.cmake — tests of `attn generate` (included from
# CMakeLists.txt), run through check_command.cmake like the others.
#
# Expected text is the command's own training text (kText in generate.cpp),
# not anything the model produced; cache sizes are computed by hand here.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

# A short seeded run learns the text: greedy decoding from "the model "
# continues it word for word (the sentence that follows in kText).
attn_cli_test(generate_continues_its_text "-DARGS=generate --steps 150 --tokens 60" -DEXPECT_EXIT=0
  "-DEXPECT1=\nthe model can learn to write one token after another\\. when it writes, \n"
  "-DEXPECT2=with the KV cache +[0-9]+ tokens/s"
  "-DEXPECT3=MLA \\(latent \\+ shared RoPE key\\) +288 +2304\n"          # (4*16 + 8)*4, (512 + 64)*4
  "-DEXPECT4=MHA \\(every head its own K, V\\) +512 +131072\n")           # 2*4*16*4, 2*128*128*4

# The cache is exact: each decoded step's logits equal one full-sequence
# forward of the same text (float rounding only). Sizes by hand: 2 layers x
# 2 KV heads x (16 + 16) dims x 4 B = 512 B per token.
attn_cli_test(generate_json_cached_equals_full "-DARGS=generate --steps 10 --tokens 80 --temperature 1 --seed 5 --json"
  -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=max_logit_diff_relative=0"   # within 5e-5 (measured 5e-7)
  "-DJSON_EXPECT2=cache/storage=float32" "-DJSON_EXPECT3=cache/bytes_per_token=512"
  "-DJSON_EXPECT4=cache/bytes_held=45568"      # (10 prompt + 79 fed back) tokens x 512
  "-DJSON_EXPECT5=model/window=64" "-DJSON_EXPECT6=model/kv_heads=2" "-DJSON_EXPECT7=tokens=80")

# MQA and MHA run too (--kv-heads 1 / 4): 2 x 1 x 32 x 4 = 256 B, 2 x 4 x 32 x 4 = 1024 B per token.
attn_cli_test(generate_mqa "-DARGS=generate --steps 5 --tokens 20 --kv-heads 1 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=cache/bytes_per_token=256" "-DJSON_EXPECT2=max_logit_diff_relative=0")
attn_cli_test(generate_mha "-DARGS=generate --steps 5 --tokens 20 --kv-heads 4 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=cache/bytes_per_token=1024" "-DJSON_EXPECT2=max_logit_diff_relative=0")

# Smaller storage costs a little accuracy, and really is smaller: the printed
# relative error must be nonzero and below 1% (bfloat16) / 10% (int8).
attn_cli_test(generate_bf16_cache "-DARGS=generate --steps 40 --tokens 80 --cache bfloat16" -DEXPECT_EXIT=0
  "-DEXPECT1=\\(bfloat16, contiguous, 256 B/token over 2 layers"
  "-DEXPECT2=\\([1-9]\\.[0-9]e-0[3-9] of the largest \\|logit\\|\\): what the smaller cache storage costs")
# int8 paged by 16 with the 64-token window: scales per 16 tokens, so
# 2 layers x 2 heads x 32 dims x (1 + 4/16) B = 160 B per token; 109 tokens
# cached, the window keeps positions 45.., i.e. pages 2..6: 5 x 16 x 160 B.
attn_cli_test(generate_int8_paged_window "-DARGS=generate --steps 40 --tokens 100 --cache int8 --page-size 16" -DEXPECT_EXIT=0
  "-DEXPECT1=\\(int8, paged by 16, 160 B/token over 2 layers, 12800 B held\\)"
  "-DEXPECT2=\\([1-9]\\.[0-9]e-0[2-9] of the largest \\|logit\\|\\): what the smaller cache storage costs")

# --save / --load: the same text from the file as from the run that wrote it.
add_test(NAME attn_cli.generate_save_load_round_trip
         COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli>
                 -DFILE=${CMAKE_CURRENT_BINARY_DIR}/generate_test.safetensors
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/check_generate_roundtrip.cmake)

# Usage errors exit 2 and name the argument; a bad file exits 1 and names it.
attn_cli_test(generate_prompt_outside_vocabulary "-DARGS=generate --prompt Hello" -DEXPECT_EXIT=2
  "-DEXPECT1=--prompt: the character 'H' is not in the model's vocabulary")
attn_cli_test(generate_kv_heads_must_divide "-DARGS=generate --kv-heads 3" -DEXPECT_EXIT=2
  "-DEXPECT1=--kv-heads 3 does not divide --heads 4")
attn_cli_test(generate_head_dim_must_be_even "-DARGS=generate --d-model 60 --heads 4" -DEXPECT_EXIT=2
  "-DEXPECT1=head dim [^\n]*15 must be even")
attn_cli_test(generate_bad_cache "-DARGS=generate --cache fp8" -DEXPECT_EXIT=2 "-DEXPECT1=--cache")
attn_cli_test(generate_load_missing_file "-DARGS=generate --load /nonexistent/w.safetensors" -DEXPECT_EXIT=1
  "-DEXPECT1=/nonexistent/w\\.safetensors")
attn_cli_test(generate_load_foreign_file
  "-DARGS=generate --load ${CMAKE_CURRENT_SOURCE_DIR}/testdata/heatmap_weights.safetensors" -DEXPECT_EXIT=1
  "-DEXPECT1=not written by attn generate --save")
attn_cli_test(generate_help "-DARGS=generate --help" -DEXPECT_EXIT=0
  "-DEXPECT1=--prompt" "-DEXPECT2=--cache" "-DEXPECT3=--temperature" "-DEXPECT4=--kv-heads")
attn_cli_test(help_lists_generate "-DARGS=--help" -DEXPECT_EXIT=0 "-DEXPECT1=\n  generate +Train a tiny")
