# check_generate_roundtrip.cmake — `attn generate --save F` then
# `attn generate --load F` must generate the same text: the weights, the
# vocabulary and the model sizes all survive the safetensors file.
#
#   cmake -DEXE=path/to/attn -DFILE=weights.safetensors -P check_generate_roundtrip.cmake
cmake_minimum_required(VERSION 3.25)

set(common --prompt "the " --tokens 40 --temperature 0.8 --top-k 5 --seed 4 --json)
execute_process(COMMAND ${EXE} generate --steps 20 --layers 1 --save ${FILE} ${common}
                RESULT_VARIABLE rc1 OUTPUT_VARIABLE out1 ERROR_VARIABLE err1)
if(NOT rc1 EQUAL 0)
  message(FATAL_ERROR "generate --save exited ${rc1}:\n${out1}${err1}")
endif()
execute_process(COMMAND ${EXE} generate --load ${FILE} ${common}
                RESULT_VARIABLE rc2 OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
if(NOT rc2 EQUAL 0)
  message(FATAL_ERROR "generate --load exited ${rc2}:\n${out2}${err2}")
endif()
string(JSON text1 GET "${out1}" text)
string(JSON text2 GET "${out2}" text)
string(JSON layers2 GET "${out2}" model layers)
if(NOT text1 STREQUAL text2)
  message(FATAL_ERROR "--load generated \"${text2}\", --save's run \"${text1}\"")
endif()
if(NOT layers2 EQUAL 1)
  message(FATAL_ERROR "--load built ${layers2} layers, the file holds 1")
endif()
string(LENGTH "${text1}" n)
if(NOT n EQUAL 40)
  message(FATAL_ERROR "expected 40 generated characters, got ${n}: \"${text1}\"")
endif()
message(STATUS "round trip ok: \"${text1}\"")
