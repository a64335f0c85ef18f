# tools/attn/limits_tests.cmake — the command's limits (issue 17): every
# floating-point option refuses NaN and inf (CLI::Range alone lets NaN
# through), every option that sets an amount of work has a bound, a file
# given to --load is checked before it sizes anything, and a write that fails
# keeps the file it was replacing.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

# ---- NaN and inf in floating-point options: usage errors (exit 2) naming the option ----
foreach(case "generate;--lr" "generate;--temperature" "train;--lr" "demo;--overflow-factor")
  list(GET case 0 cmd)
  list(GET case 1 opt)
  string(REPLACE "--" "" tag "${opt}")
  foreach(value nan NaN -nan inf -inf)
    attn_cli_test(limits_${cmd}_${tag}_${value} "-DARGS=${cmd} ${opt} ${value}" -DEXPECT_EXIT=2
      "-DEXPECT1=${opt}: '${value}' is not a finite number")
  endforeach()
endforeach()
attn_cli_test(limits_generate_lr_out_of_range "-DARGS=generate --lr 2" -DEXPECT_EXIT=2
  "-DEXPECT1=--lr: '2' is not in \\[1e-06, 1\\]")

# ---- amounts of work: bounded, with the limit in the message ----
attn_cli_test(limits_why_steps "-DARGS=why --steps 10000000000" -DEXPECT_EXIT=2 "-DEXPECT1=--steps: Value 10000000000 not in range")
attn_cli_test(limits_generate_steps "-DARGS=generate --steps 10000000000" -DEXPECT_EXIT=2 "-DEXPECT1=--steps")
attn_cli_test(limits_generate_model_size "-DARGS=generate --layers 64 --d-model 4096 --heads 32 --kv-heads 8" -DEXPECT_EXIT=2
  "-DEXPECT1=make about 1\\.3e\\+10 parameters \\(12 x layers x d_model\\^2\\); at most 2\\.0e\\+08")
attn_cli_test(limits_generate_activations "-DARGS=generate --batch 4096 --context 4096 --d-model 64" -DEXPECT_EXIT=2
  "-DEXPECT1=--batch x --context x --d-model x --layers = 2\\.1e\\+09 \\(the activations a training step keeps\\); at most 1\\.0e\\+08")
attn_cli_test(limits_generate_tokens "-DARGS=generate --tokens 100000" -DEXPECT_EXIT=2
  "-DEXPECT1=--tokens 100000 with this model: the comparison without the cache recomputes every prefix")
attn_cli_test(limits_bench_work "-DARGS=bench --len 1048576 --dim 1" -DEXPECT_EXIT=2
  "-DEXPECT1=TFLOP \\([0-9]+ runs of this shape\\); at most 20 TFLOP")

# ---- --load: the metadata checked against the file's tensors before anything is allocated ----
# (testdata/make_generate_fixtures.py wrote both files; each is a few hundred bytes.)
attn_cli_test(limits_generate_load_model_not_in_file
  "-DARGS=generate --load ${CMAKE_CURRENT_SOURCE_DIR}/testdata/generate_big_metadata.safetensors" -DEXPECT_EXIT=1
  "-DEXPECT1=generate_big_metadata\\.safetensors: the metadata describes a model with tensor 'embed_tokens\\.weight' \\[27, 4096\\], which the file does not have")
attn_cli_test(limits_generate_load_absurd_metadata
  "-DARGS=generate --load ${CMAKE_CURRENT_SOURCE_DIR}/testdata/generate_absurd_metadata.safetensors" -DEXPECT_EXIT=1
  "-DEXPECT1=metadata \"attn\\.d_model\" = \"999999999\", expected an integer from 1 to 4096")

# ---- a failed write keeps the old file, for every file the command writes ----
function(attn_write_test name args file)
  add_test(NAME attn_cli.${name} COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli> "-DARGS=${args}" -DFILE=${file}
           -P ${CMAKE_CURRENT_SOURCE_DIR}/check_write_keeps_old.cmake)
endfunction()
set(wdir ${CMAKE_CURRENT_BINARY_DIR}/write_tests)
attn_write_test(limits_generate_save_keeps_old "generate --steps 1 --tokens 1 --save ${wdir}/g/model.safetensors"
                ${wdir}/g/model.safetensors)
attn_write_test(limits_heatmap_png_keeps_old "heatmap --out ${wdir}/h/map.png" ${wdir}/h/map.png)
attn_write_test(limits_heatmap_svg_keeps_old "heatmap --out ${wdir}/s/map.svg" ${wdir}/s/map.svg)
attn_write_test(limits_demo_plot_keeps_old "demo --plot ${wdir}/d/plot.png" ${wdir}/d/plot.png)
attn_write_test(limits_train_png_keeps_old "train --steps 1 --out-dir ${wdir}/t" ${wdir}/t/loss.png)
attn_write_test(limits_why_png_keeps_old "why --quick --steps 1 --out-dir ${wdir}/w" ${wdir}/w/why_accuracy.png)
