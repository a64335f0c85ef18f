# tools/attn/why_tests.cmake — tests of `attn why` (included from CMakeLists.txt).
# The --quick run trains both models (a few seconds); check_why.cmake asserts
# that attention beats the bottleneck model at the longest length by MARGIN of
# per-token accuracy, that both pictures have their documented sizes, and that
# a second run with the same seed gives the same numbers and pixels.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

add_test(NAME attn_cli.why_quick_attention_wins
         COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli> -DDIR=${CMAKE_CURRENT_BINARY_DIR}/why_quick
                 -DMARGIN=0.25 -P ${CMAKE_CURRENT_SOURCE_DIR}/check_why.cmake)
# The table (a short run: only the layout is checked here).
attn_cli_test(why_quick_table "-DARGS=why --quick --steps 20 --out-dir ${CMAKE_CURRENT_BINARY_DIR}/why_table" -DEXPECT_EXIT=0
  "-DEXPECT1=length +\\| +bottleneck +attention"
  "-DEXPECT2=\n +12 +\\|"
  "-DEXPECT3=seq/s"
  "-DEXPECT4=wrote [^\n]*why_accuracy\\.png \\(880x540\\)")
attn_cli_test(why_help "-DARGS=why --help" -DEXPECT_EXIT=0 "-DEXPECT1=--out-dir" "-DEXPECT2=--quick" "-DEXPECT3=--seed")
attn_cli_test(why_bad_steps "-DARGS=why --steps 0" -DEXPECT_EXIT=2 "-DEXPECT1=--steps")
attn_cli_test(why_bad_seed "-DARGS=why --seed minus-one" -DEXPECT_EXIT=2 "-DEXPECT1=--seed")
attn_cli_test(why_unknown_option "-DARGS=why --bogus" -DEXPECT_EXIT=2 "-DEXPECT1=--bogus")
attn_cli_test(why_bad_out_dir "-DARGS=why --quick --out-dir /proc/no/such/dir" -DEXPECT_EXIT=2 "-DEXPECT1=--out-dir")
