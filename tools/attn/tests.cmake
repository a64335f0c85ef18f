# tools/attn/tests.cmake — tests of `attn params` and `attn heatmap`, run
# through check_command.cmake like the demo's (included from CMakeLists.txt).
# Expected numbers are computed by hand from the published configurations.
if(NOT ATTN_BUILD_TESTS)
  return()
endif()

# GPT-3: per head 4 x 12288 x 128, per layer x 96 heads, total x 96 layers.
attn_cli_test(params_gpt3 "-DARGS=params --model gpt3" -DEXPECT_EXIT=0
  "-DEXPECT1=one head +4 x d_model x d_head +6,291,456"
  "-DEXPECT2=heads x 4 x d_model x d_head +603,979,776"
  "-DEXPECT3=57,982,058,496"
  "-DEXPECT4=notes: \"58 billion\""
  # KV cache, bf16: MHA 2 x 96 x 128 x 2 B = 49,152 B per layer, x 96 layers
  "-DEXPECT5=MHA [^\n]*24576 +49,152 +4,718,592")
attn_cli_test(params_gpt3_json "-DARGS=params --model gpt3 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=per_head/total=6291456" "-DJSON_EXPECT2=per_head/query=1572864"
  "-DJSON_EXPECT3=per_layer/total=603979776" "-DJSON_EXPECT4=total=57982058496"
  "-DJSON_EXPECT5=kv_cache/mha/bytes_per_token_per_layer=49152"
  "-DJSON_EXPECT6=kv_cache/mqa/bytes_per_token=49152")   # 2 x 128 x 2 B x 96 layers
attn_cli_test(params_gpt2_json "-DARGS=params --model gpt2 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=per_head/total=196608" "-DJSON_EXPECT2=total=28311552"
  "-DJSON_EXPECT3=kv_cache/mha/bytes_per_token=36864")   # 2 x 768 x 2 B x 12 layers
# DeepSeek-V2: MLA caches 512 + 64 = 576 elements/token/layer; 60 layers bf16.
attn_cli_test(params_deepseek_v2 "-DARGS=params --model deepseek-v2 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=kv_cache/mla/elements_per_token_per_layer=576"
  "-DJSON_EXPECT2=kv_cache/mla/bytes_per_token=69120"
  "-DJSON_EXPECT3=kv_cache/mha/elements_per_token_per_layer=32768"
  "-DJSON_EXPECT4=deepseek_v2_check/deepseek_67b_bytes_per_token_bf16=389120"
  "-DJSON_EXPECT5=deepseek_v2_check/reduction_vs_deepseek_67b_bf16=0.822368"    # 1 - 69120/389120
  "-DJSON_EXPECT6=deepseek_v2_check/reduction_vs_deepseek_67b_mla_6bit=0.933388" # 1 - 25920/389120
  "-DJSON_EXPECT7=deepseek_v2_check/reduction_vs_mha_same_width_bf16=0.982422")  # 1 - 576/32768
attn_cli_test(params_deepseek_v2_says_finding "-DARGS=params --model deepseek-v2" -DEXPECT_EXIT=0
  "-DEXPECT1=82\\.2% smaller +<- not 93\\.3%" "-DEXPECT2=6 bits" "-DEXPECT3=98\\.2% smaller")
# A custom GQA model (Llama-2-7B-like widths with 8 K/V heads), fp32 cache.
attn_cli_test(params_custom_gqa
  "-DARGS=params --d-model 4096 --heads 32 --kv-heads 8 --layers 32 --dtype-bytes 4 --json" -DEXPECT_EXIT=0
  "-DJSON_EXPECT1=per_layer/key=4194304"                 # 4096 x 8 x 128
  "-DJSON_EXPECT2=total=1342177280"                      # 32 x (2 x 4096^2 + 2 x 4096 x 1024)
  "-DJSON_EXPECT3=kv_cache/gqa/bytes_per_token=262144")  # 2 x 8 x 128 x 4 B x 32
attn_cli_test(params_help "-DARGS=params --help" -DEXPECT_EXIT=0 "-DEXPECT1=--kv-heads" "-DEXPECT2=--latent-dim")
attn_cli_test(params_unknown_model "-DARGS=params --model gpt9" -DEXPECT_EXIT=2 "-DEXPECT1=gpt9")
attn_cli_test(params_kv_heads_must_divide "-DARGS=params --kv-heads 5" -DEXPECT_EXIT=2 "-DEXPECT1=--kv-heads 5")
attn_cli_test(params_heads_must_divide "-DARGS=params --d-model 100 --heads 7" -DEXPECT_EXIT=2 "-DEXPECT1=--head-dim")
attn_cli_test(params_zero_is_usage_error "-DARGS=params --layers 0" -DEXPECT_EXIT=2 "-DEXPECT1=--layers")
attn_cli_test(params_custom_needs_heads "-DARGS=params --d-model 512" -DEXPECT_EXIT=2 "-DEXPECT1=--heads")

# ---- attn heatmap ---------------------------------------------------------------
# Sizes from the layout documented at the top of heatmap.cpp: a panel is
# 110 + 360 px wide and 28 + 80 + 360 px tall; + 20 margin + 90 colour bar
# across, + 60 title + 30 bottom down, 40 px between panels.
function(attn_image_test name args file width height)
  set(path ${CMAKE_CURRENT_BINARY_DIR}/${file})
  add_test(NAME attn_cli.${name} COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:attn_cli> "-DARGS=${args} --out ${path}"
           -DFILE=${path} -DWIDTH=${width} -DHEIGHT=${height} ${ARGN} -P ${CMAKE_CURRENT_SOURCE_DIR}/check_image.cmake)
endfunction()
attn_image_test(heatmap_png "heatmap" heatmap_default.png 580 558)  # 20+470+90, 60+468+30
attn_image_test(heatmap_causal_png "heatmap --causal" heatmap_causal.png 580 558)
attn_image_test(heatmap_two_heads_png "heatmap --heads 2" heatmap_heads2.png 1090 558)  # 20+2*470+40+90
attn_image_test(heatmap_four_heads_png "heatmap --heads 4 --causal" heatmap_heads4.png 1090 1066)  # 2x2: 60+2*468+40+30
attn_image_test(heatmap_svg_has_labels "heatmap" heatmap_default.svg 580 558
  -DTEXT1=Your -DTEXT2=journey -DTEXT3=starts -DTEXT4=with -DTEXT5=one -DTEXT6=step -DTEXT7=simplified)
attn_image_test(heatmap_text_svg "heatmap --text \"a fluffy blue creature\"" heatmap_text.svg 580 558
  -DTEXT1=fluffy -DTEXT2=creature)
attn_image_test(heatmap_weights_file
  "heatmap --weights ${CMAKE_CURRENT_SOURCE_DIR}/testdata/heatmap_weights.safetensors" heatmap_weights.svg 1090 558
  -DTEXT1=fluffy -DTEXT2=creature "-DTEXT3=[2, 3, 3]")
attn_cli_test(heatmap_unknown_extension "-DARGS=heatmap --out x.jpg" -DEXPECT_EXIT=2 "-DEXPECT1=\\.png or \\.svg")
attn_cli_test(heatmap_needs_out "-DARGS=heatmap" -DEXPECT_EXIT=2 "-DEXPECT1=--out")
attn_cli_test(heatmap_zero_heads "-DARGS=heatmap --out x.png --heads 0" -DEXPECT_EXIT=2 "-DEXPECT1=--heads")
attn_cli_test(heatmap_missing_weights "-DARGS=heatmap --out x.png --weights /nonexistent.safetensors" -DEXPECT_EXIT=2
  "-DEXPECT1=--weights")
attn_cli_test(heatmap_weights_and_heads "-DARGS=heatmap --out x.png --heads 2 --weights ${CMAKE_CURRENT_SOURCE_DIR}/testdata/heatmap_weights.safetensors"
  -DEXPECT_EXIT=2 "-DEXPECT1=excludes")
attn_cli_test(heatmap_help "-DARGS=heatmap --help" -DEXPECT_EXIT=0 "-DEXPECT1=--causal" "-DEXPECT2=--weights")
