# tools/attn/limits_tests.cmake — the command's limits (issue 17): a file
# given to --load is checked before it sizes anything, and a write that
# fails keeps the file it was replacing.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

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
