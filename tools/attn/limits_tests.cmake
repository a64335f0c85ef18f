# tools/attn/limits_tests.cmake — the command's limits (issue 17): a write
# that fails keeps the file it was replacing.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

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
