# tools/attn/cmd_tests.cmake — tests of `attn demo`'s later stages (trainable
# weights, scaling, causal mask, dropout, heads), its --text/--step/--plot
# options, `attn train` and `attn bench`; run through check_command.cmake like
# the others (included from CMakeLists.txt).
#
# The demo's expected numbers are the book's / PyTorch's, printed by
# tools/attn/testdata/demo_expected.py (torch.manual_seed(123) + torch.rand for
# the plain matrices, manual_seed(789) + nn.Linear for SelfAttention_v2 and the
# causal mask, manual_seed(123) for the heads) — never the command's own output.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

# ---- attn demo: stages 7-8, trainable weights and scaling by sqrt(d_k) --------
attn_cli_test(demo_trainable_weights "-DARGS=demo" -DEXPECT_EXIT=0
  "-DEXPECT1=row 0 +0\\.2961 +0\\.5166\n[^\n]*row 1 +0\\.2517 +0\\.6886\n[^\n]*row 2 +0\\.0740 +0\\.8665\n"  # W_query
  "-DEXPECT2=\nq2 +0\\.4306 +1\\.4551\n"
  "-DEXPECT3=x2 journey +0\\.4433 +1\\.1419 +0\\.3951 +1\\.0037\n"                # k2, v2
  "-DEXPECT4=w22 = 1\\.8524"
  "-DEXPECT5=scores w2 +1\\.2705 +1\\.8524 +1\\.8111 +1\\.0795 +0\\.5577 +1\\.5440\n"
  "-DEXPECT6=softmax\\(w2\\) +unscaled +0\\.1401 +0\\.2507 +0\\.2406 +0\\.1157 +0\\.0687 +0\\.1842 +1\\.0000\n"
  "-DEXPECT7=softmax\\(w2/sqrt\\(d_k\\)\\) +0\\.1500 +0\\.2264 +0\\.2199 +0\\.1311 +0\\.0906 +0\\.1820 +1\\.0000\n"
  "-DEXPECT8=\nz2 +0\\.3061 +0\\.8210\n"
  # SelfAttention_v1, all six context vectors
  "-DEXPECT9=x1 Your +0\\.2996 +0\\.8053\nx2 journey +0\\.3061 +0\\.8210\nx3 starts +0\\.3058 +0\\.8203\nx4 with +0\\.2948 +0\\.7939\nx5 one +0\\.2927 +0\\.7891\nx6 step +0\\.2990 +0\\.8040\n")

# ---- stage 9: causal masking with SelfAttention_v2's weights (seed 789) -------
attn_cli_test(demo_causal_mask "-DARGS=demo" -DEXPECT_EXIT=0
  "-DEXPECT1=x1 Your +-0\\.0739 +0\\.0713\nx2 journey +-0\\.0748 +0\\.0703\n[^\n]*\n[^\n]*\n[^\n]*\nx6 step +-0\\.0754 +0\\.0693\n"
  "-DEXPECT2=x1 Your +0\\.1921 +0\\.1646 +0\\.1652 +0\\.1550 +0\\.1721 +0\\.1510 +1\\.0000\n"
  "-DEXPECT3=x4 with +1 +1 +1 +1 +0 +0\n"
  "-DEXPECT4=x3 starts +0\\.2036 +0\\.1659 +0\\.1662 +0\\.0000 +0\\.0000 +0\\.0000 +0\\.5357\n"   # masked, before renormalising
  "-DEXPECT5=x2 journey +0\\.5517 +0\\.4483 +0\\.0000 +0\\.0000 +0\\.0000 +0\\.0000 +1\\.0000\nx3 starts +0\\.3800 +0\\.3097 +0\\.3103 [^\n]*\nx4 with +0\\.2758 +0\\.2460 +0\\.2462 +0\\.2319 [^\n]*\nx5 one +0\\.2175 +0\\.1983 +0\\.1984 +0\\.1888 +0\\.1971 "
  "-DEXPECT6=x2 journey +0\\.4656 +0\\.1723 +-inf +-inf +-inf +-inf\n"
  "-DEXPECT7=x6 step +0\\.3408 +0\\.1270 +0\\.1290 +0\\.0198 +0\\.1290 +0\\.0078\n"
  "-DEXPECT8=softmax\\(masked scores[^\n]*\n\n[^\n]*\nx1 Your +1\\.0000 [^\n]*\nx2 journey +0\\.5517 +0\\.4483 ")

# ---- stages 10-11: dropout (ours, counter-based) and two heads (seed 123) ------
attn_cli_test(demo_dropout_and_heads "-DARGS=demo" -DEXPECT_EXIT=0
  "-DEXPECT1=counter-based"
  "-DEXPECT2=Bernoulli"
  "-DEXPECT3=row [1-6] +[02]\\.0 +[02]\\.0 +[02]\\.0 +[02]\\.0 +[02]\\.0 +[02]\\.0\n"   # dropout(ones): 0 or 2 only
  # CausalAttention(3, 2) from manual_seed(123)
  "-DEXPECT4=x1 Your +-0\\.4519 +0\\.2216\nx2 journey +-0\\.5874 +0\\.0058\nx3 starts +-0\\.6300 +-0\\.0632\nx4 with +-0\\.5675 +-0\\.0843\nx5 one +-0\\.5526 +-0\\.0981\nx6 step +-0\\.5299 +-0\\.1081\n"
  # MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2): the book's printed rows
  "-DEXPECT5=x1 Your +-0\\.4519 +0\\.2216 +0\\.4772 +0\\.1063\nx2 journey +-0\\.5874 +0\\.0058 +0\\.5891 +0\\.3257\nx3 starts +-0\\.6300 +-0\\.0632 +0\\.6202 +0\\.3860\n"
  "-DEXPECT6=x4 with +-0\\.5675 +-0\\.0843 +0\\.5478 +0\\.3589\nx5 one +-0\\.5526 +-0\\.0981 +0\\.5321 +0\\.3428\nx6 step +-0\\.5299 +-0\\.1081 +0\\.5077 +0\\.3493\n"
  # MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)
  "-DEXPECT7=x1 Your +0\\.3190 +0\\.4858\nx2 journey +0\\.2943 +0\\.3897\nx3 starts +0\\.2856 +0\\.3593\nx4 with +0\\.2693 +0\\.3873\nx5 one +0\\.2639 +0\\.3928\nx6 step +0\\.2575 +0\\.4028\n"
  # causal context vectors with v2's weights (demo_expected.py's "causal context vectors")
  "-DEXPECT8=x1 Your +-0\\.0872 +0\\.0286\nx2 journey +-0\\.0991 +0\\.0501\n")

# --json covers the new stages (tolerance 5e-5, the printed rounding).
attn_cli_test(demo_json_trainable "-DARGS=demo --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=trainable/query/1=1.4551" "-DJSON_EXPECT2=trainable/scores/5=1.5440"
  "-DJSON_EXPECT3=trainable/weights/4=0.0906" "-DJSON_EXPECT4=trainable/context/0=0.3061"
  "-DJSON_EXPECT5=trainable/all_context/3/1=0.7939" "-DJSON_EXPECT6=trainable/W_value/2/1=0.8274"
  "-DJSON_EXPECT7=trainable/scaled_scores/1=1.3098" "-DJSON_EXPECT8=trainable/unscaled_weights/1=0.2507"
  "-DJSON_EXPECT9=causal/self_attention/3/0=-0.0760")
attn_cli_test(demo_json_causal_heads "-DARGS=demo --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=causal/renormalized_weights/3/3=0.2319" "-DJSON_EXPECT2=causal/masked_scores/0/1=null"
  "-DJSON_EXPECT3=causal/softmax_of_masked_scores/4/4=0.1971" "-DJSON_EXPECT4=causal/mask/2/3=0"
  "-DJSON_EXPECT5=causal/weights/5/5=0.1529" "-DJSON_EXPECT6=heads/wrapper/5/3=0.3493"
  "-DJSON_EXPECT7=heads/multi_head_attention/0/1=0.4858" "-DJSON_EXPECT8=heads/causal_attention/2/1=-0.0632"
  "-DJSON_EXPECT9=dropout/p=0.5")

# --text: the built-in embedding keeps the notes' vectors for the notes' words
# ("journey" = x2 = [0.55, 0.87, 0.66], so the scores of "journey" against
# itself and "starts" are the notes' 1.4950 and 1.4754) and works for any word.
attn_cli_test(demo_text "-DARGS=demo --text \"journey starts here\"" -DEXPECT_EXIT=0
  "-DEXPECT1=x1 journey +0\\.5500 +0\\.8700 +0\\.6600\n"
  "-DEXPECT2=x2 starts +0\\.5700 +0\\.8500 +0\\.6400\n"
  "-DEXPECT3=x3 here +0\\.[0-9]+ +0\\.[0-9]+ +0\\.[0-9]+\n"
  "-DEXPECT4=scores w2 +1\\.4754 +1\\.4570 ")       # x2 = starts: the notes' S[3,2] = 1.4754, S[3,3] = 1.4570
attn_cli_test(demo_text_json "-DARGS=demo --text \"Your journey starts with one step\" --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=query_context/0=0.4419" "-DJSON_EXPECT2=heads/wrapper/0/2=0.4772")
attn_cli_test(demo_text_empty "-DARGS=demo --text \"\"" -DEXPECT_EXIT=2 "-DEXPECT1=--text")
attn_cli_test(demo_text_blank "-DARGS=demo --text \"  \"" -DEXPECT_EXIT=2 "-DEXPECT1=--text has no words")

# --step never waits when stdin is not a terminal (here /dev/null).
attn_cli_test(demo_step_without_terminal "-DARGS=demo --step" -DINPUT=/dev/null -DEXPECT_EXIT=0
  "-DEXPECT1=not a terminal, not pausing" "-DEXPECT2=11\\. Multi-head attention")
attn_cli_test(demo_step_excludes_json "-DARGS=demo --step --json" -DEXPECT_EXIT=2 "-DEXPECT1=excludes")
attn_cli_test(demo_plot_needs_png "-DARGS=demo --plot x.jpg" -DEXPECT_EXIT=2 "-DEXPECT1=\\.png")
attn_cli_test(demo_help_lists_options "-DARGS=demo --help" -DEXPECT_EXIT=0
  "-DEXPECT1=--text" "-DEXPECT2=--step" "-DEXPECT3=--plot")
# The 3-D picture: a 900x720 PNG (check_image.cmake reads its header).
add_test(NAME attn_cli.demo_plot_png COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli>
         "-DARGS=demo --plot ${CMAKE_CURRENT_BINARY_DIR}/demo_plot.png" -DFILE=${CMAKE_CURRENT_BINARY_DIR}/demo_plot.png
         -DWIDTH=900 -DHEIGHT=720 -P ${CMAKE_CURRENT_SOURCE_DIR}/check_image.cmake)

# ---- attn train ----------------------------------------------------------------
# A short seeded run must learn the task: >= 95% on the sentences it trains on
# and >= 90% on the 128 held-out ones (2 templates x 8 (animal, object) pairs x
# 8 adjectives). Chance is 1/8 among the nouns of the right kind, 1/16 among all.
set(train_dir ${CMAKE_CURRENT_BINARY_DIR}/train_test)
attn_cli_test(train_short_run_learns "-DARGS=train --steps 150 --seed 0 --out-dir ${train_dir}" -DEXPECT_EXIT=0
  "-DEXPECT1=trained sentences (9[5-9]|100)\\.[0-9]% \\([0-9]+/896\\)"
  "-DEXPECT2=held-out sentences (9[0-9]|100)\\.[0-9]% \\([0-9]+/128\\)"
  "-DEXPECT3=\"the cat sat on the mat because it was warm\" -> mat\n"
  "-DEXPECT4=step 150/150 +loss [0-9.]+ +[0-9]+ tokens/s")     # the progress line (stderr is not a terminal here)
attn_cli_test(train_json "-DARGS=train --steps 20 --seed 3 --json --out-dir ${train_dir}" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=steps=20" "-DJSON_EXPECT2=seed=3" "-DJSON_EXPECT3=heldout_sentences=128"
  "-DJSON_EXPECT4=heads=2" "-DJSON_EXPECT5=parameters=6463")   # 31x32 + 10x32 + 3x32x32 + 32x32+32 + 32x31+31
# The pictures: the loss curve, and the learned attention (2 heads: heatmap.cpp's 2-panel size).
add_test(NAME attn_cli.train_attention_png COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli>
         "-DARGS=train --steps 5 --out-dir ${train_dir}_png" -DFILE=${train_dir}_png/attention.png
         -DWIDTH=1090 -DHEIGHT=558 -P ${CMAKE_CURRENT_SOURCE_DIR}/check_image.cmake)
add_test(NAME attn_cli.train_loss_png COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli>
         "-DARGS=train --steps 5 --out-dir ${train_dir}_loss" -DFILE=${train_dir}_loss/loss.png
         -DWIDTH=800 -DHEIGHT=480 -P ${CMAKE_CURRENT_SOURCE_DIR}/check_image.cmake)
attn_cli_test(train_zero_steps "-DARGS=train --steps 0" -DEXPECT_EXIT=2 "-DEXPECT1=--steps")
attn_cli_test(train_heads_must_divide "-DARGS=train --d-model 10 --heads 3" -DEXPECT_EXIT=2
  "-DEXPECT1=--d-model 10 is not divisible by --heads 3")
attn_cli_test(train_bad_number "-DARGS=train --seed abc" -DEXPECT_EXIT=2 "-DEXPECT1=--seed")
attn_cli_test(train_help "-DARGS=train --help" -DEXPECT_EXIT=0 "-DEXPECT1=--steps" "-DEXPECT2=--out-dir" "-DEXPECT3=--json")

# ---- attn bench ----------------------------------------------------------------
# FLOPs by hand: 4 x B x H x Lq x Lk x D = 4 x 1 x 2 x 16 x 16 x 8 = 16384; causal
# half; backward 2.5x.
attn_cli_test(bench_text "-DARGS=bench --batch 1 --heads 2 --len 16 --dim 8 --repeats 2" -DEXPECT_EXIT=0
  "-DEXPECT1=B=1 H=2 Hkv=2 Lq=16 Lk=16 D=8" "-DEXPECT2=path: fast\n"
  "-DEXPECT3=\n  forward +[0-9]+\\.[0-9]+ +[0-9]+\\.[0-9]+ +[0-9]+\\.[0-9]+\n"
  "-DEXPECT4=\n  backward +[0-9]+\\.[0-9]+ +[0-9]+\\.[0-9]+ +[0-9]+\\.[0-9]+\n")
attn_cli_test(bench_json_flops "-DARGS=bench --batch 1 --heads 2 --len 16 --dim 8 --repeats 1 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=forward/flops=16384" "-DJSON_EXPECT2=backward/flops=40960" "-DJSON_EXPECT3=shape/kv_heads=2")
attn_cli_test(bench_causal_gqa_json
  "-DARGS=bench --batch 2 --heads 4 --kv-heads 2 --q-len 8 --k-len 32 --dim 4 --causal --dtype double --repeats 1 --json"
  -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=forward/flops=16384"    # 4 x 2 x 4 x 8 x 32 x 4 = 32768, / 2 causal
  "-DJSON_EXPECT2=backward/flops=40960" "-DJSON_EXPECT3=shape/q_len=8" "-DJSON_EXPECT4=shape/k_len=32")
# The path: B*H*Lq*Lk*(2D) = 8192 multiply-adds above runs fast both ways; 64
# (the notes' scale) stays on the reference loops (src/sdpa.cpp's cut-offs);
# --backend forces one; double has no fast path.
attn_cli_test(bench_tiny_is_reference "-DARGS=bench --batch 1 --heads 1 --len 4 --dim 2 --repeats 1 --json"
  -DEXPECT_EXIT=0 "-DJSON_EXPECT1=path=reference" "-DJSON_EXPECT2=backward_path=reference")
attn_cli_test(bench_backend_reference "-DARGS=bench --heads 2 --len 16 --dim 8 --repeats 1 --backend reference --json"
  -DEXPECT_EXIT=0 "-DJSON_EXPECT1=path=reference" "-DJSON_EXPECT2=backward_path=reference")
attn_cli_test(bench_backend_fast_tiny "-DARGS=bench --heads 1 --len 4 --dim 2 --repeats 1 --backend fast --json"
  -DEXPECT_EXIT=0 "-DJSON_EXPECT1=path=fast" "-DJSON_EXPECT2=backward_path=fast")
attn_cli_test(bench_backend_fast_double "-DARGS=bench --len 8 --dtype double --backend fast" -DEXPECT_EXIT=2
  "-DEXPECT1=float only")
# A model's inputs: [B, L, H, D] views and a key-padding mask [B, 1, 1, Lk].
attn_cli_test(bench_layout_and_mask
  "-DARGS=bench --batch 2 --heads 2 --len 16 --dim 8 --repeats 1 --layout bshd --mask key-padding:5 --json"
  -DEXPECT_EXIT=0 "-DJSON_EXPECT1=layout=bshd" "-DJSON_EXPECT2=mask=key-padding:5" "-DJSON_EXPECT3=path=fast")
attn_cli_test(bench_bad_mask "-DARGS=bench --len 16 --mask key-padding:17" -DEXPECT_EXIT=2 "-DEXPECT1=--mask")
attn_cli_test(bench_kv_heads_must_divide "-DARGS=bench --heads 4 --kv-heads 3" -DEXPECT_EXIT=2
  "-DEXPECT1=--kv-heads 3 must divide --heads 4")
attn_cli_test(bench_bad_dtype "-DARGS=bench --dtype half" -DEXPECT_EXIT=2 "-DEXPECT1=--dtype")
attn_cli_test(bench_zero_len "-DARGS=bench --len 0" -DEXPECT_EXIT=2 "-DEXPECT1=--len")
attn_cli_test(bench_too_big "-DARGS=bench --batch 1000 --heads 1000 --len 100000" -DEXPECT_EXIT=2 "-DEXPECT1=at most 2 G")
attn_cli_test(bench_help "-DARGS=bench --help" -DEXPECT_EXIT=0 "-DEXPECT1=--kv-heads" "-DEXPECT2=--causal" "-DEXPECT3=--threads")
attn_cli_test(help_lists_train_and_bench "-DARGS=--help" -DEXPECT_EXIT=0 "-DEXPECT1=\n  bench +Time SDPA" "-DEXPECT2=\n  train +Train a small")
