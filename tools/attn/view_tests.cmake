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
