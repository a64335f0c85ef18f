# tools/attn/embed_tests.cmake — `attn embed` and `attn heatmap --model` on the
# tiny random BERT of tests/golden/bert_tiny (included from CMakeLists.txt).
# Expected numbers are transformers' (tests/golden/bert_golden.json, made by
# tests/golden/make_bert_golden.py): "The cat sat on the mat." is row 0 of its
# "model" batch, unpadded, so its embedding and attention weights are those.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()
set(tiny ${PROJECT_SOURCE_DIR}/tests/golden/bert_tiny)

attn_cli_test(embed_tiny_matches_transformers
  "-DARGS=embed --model ${tiny} --json \"The cat sat on the mat.\" \"Hello, world! unaffable\"" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=texts/0/ids/2=23" "-DJSON_EXPECT2=texts/0/tokens/7=." "-DJSON_EXPECT3=texts/1/tokens/6=##aff"
  "-DJSON_EXPECT4=texts/0/embedding/0=-0.017525" "-DJSON_EXPECT5=texts/0/embedding/1=0.022715"
  "-DJSON_EXPECT6=texts/0/embedding/2=-0.612064" "-DJSON_EXPECT7=similarities/0/0=1.0"
  "-DJSON_EXPECT8=config/hidden_size=16")
attn_cli_test(embed_tiny_text "-DARGS=embed --model ${tiny} hello cat" -DEXPECT_EXIT=0
  "-DEXPECT1=\\[CLS\\] hello \\[SEP\\]" "-DEXPECT2=cosine similarity\n  \\[1\\] \\[2\\] +-?[01]\\.[0-9]+")
attn_cli_test(embed_help "-DARGS=embed --help" -DEXPECT_EXIT=0 "-DEXPECT1=--model" "-DEXPECT2=--json")
attn_cli_test(embed_json_invalid_utf8 "-DARGS=embed --model ${tiny} --json caf<0xFF> cat" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=config/hidden_size=16")  # valid JSON, U+FFFD for the byte (was: unexpected error)
attn_cli_test(embed_needs_model "-DARGS=embed hello" -DEXPECT_EXIT=2 "-DEXPECT1=--model")
attn_cli_test(embed_needs_text "-DARGS=embed --model ${tiny}" -DEXPECT_EXIT=2 "-DEXPECT1=no TEXT")
attn_cli_test(embed_bad_batch_size "-DARGS=embed --model ${tiny} --batch-size 0 hi" -DEXPECT_EXIT=2 "-DEXPECT1=--batch-size")
attn_cli_test(embed_missing_model "-DARGS=embed --model /nonexistent/model hi" -DEXPECT_EXIT=1
  "-DEXPECT1=model directory '/nonexistent/model': does not exist")
attn_cli_test(embed_model_without_weights "-DARGS=embed --model ${CMAKE_CURRENT_SOURCE_DIR}/testdata hi" -DEXPECT_EXIT=1
  "-DEXPECT1=testdata/config.json: cannot open")

# heatmap --model: layer 1, head 2, query [CLS]: transformers' eager attention weights.
attn_cli_test(heatmap_model_json
  "-DARGS=heatmap --model ${tiny} --text \"The cat sat on the mat.\" --layer 1 --head 2 --json"
  -DEXPECT_EXIT=0 "-DJSON_EXPECT1=tokens/2=cat" "-DJSON_EXPECT2=weights/0/0/0=0.111640"
  "-DJSON_EXPECT3=weights/0/0/1=0.094462" "-DJSON_EXPECT4=weights/0/0/2=0.116188" "-DJSON_EXPECT5=layer=1")
attn_image_test(heatmap_model_png "heatmap --model ${tiny} --text hello --head 0" heatmap_model.png 580 558)
attn_image_test(heatmap_model_all_heads_svg "heatmap --model ${tiny} --text hello" heatmap_model.svg 1090 1066)  # 4 heads: 2x2
attn_cli_test(heatmap_model_bad_layer "-DARGS=heatmap --model ${tiny} --layer 2 --json" -DEXPECT_EXIT=2
  "-DEXPECT1=--layer 2: the model has layers 0\\.\\.1")
attn_cli_test(heatmap_model_bad_head "-DARGS=heatmap --model ${tiny} --head 4 --json" -DEXPECT_EXIT=2
  "-DEXPECT1=--head 4: the model has heads 0\\.\\.3")
attn_cli_test(heatmap_layer_needs_model "-DARGS=heatmap --out x.png --layer 1" -DEXPECT_EXIT=2 "-DEXPECT1=--model")
attn_cli_test(heatmap_model_excludes_heads "-DARGS=heatmap --out x.png --model ${tiny} --heads 2" -DEXPECT_EXIT=2
  "-DEXPECT1=--heads")
attn_cli_test(heatmap_model_missing "-DARGS=heatmap --model /nonexistent/m --json" -DEXPECT_EXIT=1
  "-DEXPECT1=does not exist")

# Broken model directories are errors naming the file (exit 1), never a crash.
# testdata/bert_truncated: bert_tiny with model.safetensors cut to its first
# 4000 bytes (head -c 4000); testdata/bert_not_bert: bert_tiny's config.json
# with model_type "gpt2".
attn_cli_test(embed_truncated_weights "-DARGS=embed --model ${CMAKE_CURRENT_SOURCE_DIR}/testdata/bert_truncated hi"
  -DEXPECT_EXIT=1 "-DEXPECT1=bert_truncated/model\\.safetensors: truncated")
attn_cli_test(embed_not_bert "-DARGS=embed --model ${CMAKE_CURRENT_SOURCE_DIR}/testdata/bert_not_bert hi"
  -DEXPECT_EXIT=1 "-DEXPECT1=bert_not_bert/config\\.json: model_type is \"gpt2\"; only \"bert\"")
attn_cli_test(heatmap_model_truncated "-DARGS=heatmap --model ${CMAKE_CURRENT_SOURCE_DIR}/testdata/bert_truncated --json"
  -DEXPECT_EXIT=1 "-DEXPECT1=model\\.safetensors: truncated")
