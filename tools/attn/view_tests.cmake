# tools/attn/view_tests.cmake — `attn demo --query` and `attn view`'s command
# line (included from CMakeLists.txt). The page itself is checked in a real
# browser by python/tests/test_view_browser.py (headless Chromium + Selenium).
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

# demo --query N: the walkthrough for word N (x5 = "one"); its context vector is
# row 5 of Z = A·X, which `attn demo --json` prints as context/4.
attn_cli_test(demo_query "-DARGS=demo --json --query 5" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=query/index=4" "-DJSON_EXPECT2=query/token=one"
  "-DJSON_EXPECT3=query_context/0=0.4671" "-DJSON_EXPECT4=query_context/1=0.5910"
  "-DJSON_EXPECT5=query_context/2=0.5266" "-DJSON_EXPECT6=context/4/0=0.4671")
attn_cli_test(demo_query_past_the_text "-DARGS=demo --query 7" -DEXPECT_EXIT=2 "-DEXPECT1=--query 7: the text has 6 words")
attn_cli_test(demo_query_zero "-DARGS=demo --query 0" -DEXPECT_EXIT=2 "-DEXPECT1=--query")

# The default page: written, and under 2 MB (the issue's bound; it is ~50 kB).
attn_cli_test(view_default_page "-DARGS=view --out ${CMAKE_CURRENT_BINARY_DIR}/view_default.html" -DEXPECT_EXIT=0
  "-DEXPECT1=wrote [^\n]*view_default\\.html \\(([0-9]|[0-9][0-9]|[0-9][0-9][0-9]|1[0-9][0-9][0-9])[0-9][0-9][0-9] bytes")
string(REPEAT "w " 65 ATTN_VIEW_LONG_TEXT)
# Bad input: usage errors exit 2, failures 1, each saying what was wrong. (An empty
# --text "" is tested in test_view_browser.py: separate_arguments drops "".)
attn_cli_test(view_blank_text "-DARGS=view --text \"   \" --out x.html" -DEXPECT_EXIT=2 "-DEXPECT1=--text has no words")
attn_cli_test(view_too_many_words "-DARGS=view --text \"${ATTN_VIEW_LONG_TEXT}\" --out x.html" -DEXPECT_EXIT=2
  "-DEXPECT1=--text has 65 words; at most 64")
attn_cli_test(view_unwritable_out "-DARGS=view --out /nonexistent-dir/attention.html --train-steps 0" -DEXPECT_EXIT=1
  "-DEXPECT1=--out /nonexistent-dir/attention\\.html: cannot write")
attn_cli_test(view_out_is_a_directory "-DARGS=view --out ${CMAKE_CURRENT_BINARY_DIR}" -DEXPECT_EXIT=2 "-DEXPECT1=is a directory")
attn_cli_test(view_model_not_bert
  "-DARGS=view --model ${CMAKE_CURRENT_SOURCE_DIR}/testdata/bert_not_bert --out x.html" -DEXPECT_EXIT=1
  "-DEXPECT1=model_type is \"gpt2\"; only \"bert\"")
attn_cli_test(view_model_missing "-DARGS=view --model /nonexistent/model --out x.html" -DEXPECT_EXIT=1 "-DEXPECT1=does not exist")
attn_cli_test(view_bad_train_steps "-DARGS=view --train-steps -1" -DEXPECT_EXIT=2 "-DEXPECT1=--train-steps")
attn_cli_test(view_help "-DARGS=view --help" -DEXPECT_EXIT=0 "-DEXPECT1=--model" "-DEXPECT2=--out")
