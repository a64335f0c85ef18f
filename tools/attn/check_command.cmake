# check_command.cmake — run a command, check its exit code and its output.
#
#   cmake -DEXE=path/to/attn "-DARGS=demo --json" [-DINPUT=file] -DEXPECT_EXIT=0
#         "-DEXPECT1=regex" ... "-DEXPECT9=regex"
#         "-DJSON_EXPECT1=path/to/key=0.4419" ... -P check_command.cmake
#
# INPUT: a file to use as the command's stdin (default: cmake's own stdin).
# ARGS may hold <0xFF> for that byte (invalid UTF-8).
# EXPECTn: a CMake regex that must match stdout+stderr (each one separately,
# unlike PASS_REGULAR_EXPRESSION, where any one match is enough).
# JSON_EXPECTn: "a/1/b=value": the stdout parsed as JSON, the element at that
# path (object keys and array indices, '/'-separated) must equal `value` within
# 5e-5 (the notes print 4 decimals), be null when value is "null", or equal it
# exactly when the element is a string.
cmake_minimum_required(VERSION 3.25)

separate_arguments(args UNIX_COMMAND "${ARGS}")
# ARGS may spell the byte 0xFF, never valid in UTF-8, as <0xFF>: an argument
# typed in another encoding.
string(ASCII 255 byte_ff)
list(TRANSFORM args REPLACE "<0xFF>" "${byte_ff}")
set(input "")
if(DEFINED INPUT)
  set(input INPUT_FILE "${INPUT}")
endif()
execute_process(COMMAND ${EXE} ${args} ${input}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
set(failures "")

if(NOT "${rc}" STREQUAL "${EXPECT_EXIT}")
  string(APPEND failures "exit code ${rc}, expected ${EXPECT_EXIT}\n")
endif()

foreach(n RANGE 1 9)
  if(DEFINED EXPECT${n})
    if(NOT all MATCHES "${EXPECT${n}}")
      string(APPEND failures "output does not match EXPECT${n}: ${EXPECT${n}}\n")
    endif()
  endif()
endforeach()

# A decimal string as an integer number of 1e-6 units ("0.44189" -> 441890).
function(to_micro str outvar)
  if(NOT str MATCHES "^(-?)([0-9]+)(\\.([0-9]*))?([eE]([-+]?[0-9]+))?$")
    set(${outvar} "NaN" PARENT_SCOPE)
    return()
  endif()
  set(sign "${CMAKE_MATCH_1}")
  set(int "${CMAKE_MATCH_2}")
  set(frac "${CMAKE_MATCH_4}000000")
  set(exp "${CMAKE_MATCH_6}")
  if(NOT "${exp}" STREQUAL "" AND exp LESS -6)  # tiny: rounds to 0 at this precision
    set(${outvar} 0 PARENT_SCOPE)
    return()
  endif()
  if(NOT "${exp}" STREQUAL "" AND NOT exp EQUAL 0)
    set(${outvar} "NaN" PARENT_SCOPE)  # other exponents do not occur in our outputs
    return()
  endif()
  string(SUBSTRING "${frac}" 0 6 frac)
  # Leading zeros off ("090628" -> "90628"), or math() would read octal-ish
  # garbage. Not REGEX REPLACE: CMake re-applies "^" after each replacement.
  string(REGEX MATCH "^0*([0-9]+)$" _ "${frac}")
  set(frac "${CMAKE_MATCH_1}")
  math(EXPR v "${int} * 1000000 + ${frac}")
  set(${outvar} "${sign}${v}" PARENT_SCOPE)
endfunction()

foreach(n RANGE 1 9)
  if(NOT DEFINED JSON_EXPECT${n})
    continue()
  endif()
  string(REGEX MATCH "^([^=]+)=(.*)$" _ "${JSON_EXPECT${n}}")
  set(path "${CMAKE_MATCH_1}")
  set(want "${CMAKE_MATCH_2}")
  string(REPLACE "/" ";" keys "${path}")
  string(JSON got ERROR_VARIABLE jerr GET "${out}" ${keys})
  if(jerr)
    string(APPEND failures "JSON ${path}: ${jerr}\n")
    continue()
  endif()
  string(JSON type ERROR_VARIABLE jerr TYPE "${out}" ${keys})
  if(want STREQUAL "null")
    if(NOT type STREQUAL "NULL")
      string(APPEND failures "JSON ${path} = ${got} (${type}), expected null\n")
    endif()
    continue()
  endif()
  if(type STREQUAL "STRING")  # strings compare exactly
    if(NOT got STREQUAL want)
      string(APPEND failures "JSON ${path} = '${got}', expected '${want}'\n")
    endif()
    continue()
  endif()
  to_micro("${got}" g)
  to_micro("${want}" w)
  if(g STREQUAL "NaN" OR w STREQUAL "NaN")
    string(APPEND failures "JSON ${path} = '${got}', expected a number near ${want}\n")
    continue()
  endif()
  math(EXPR diff "${g} - (${w})")
  if(diff LESS -50 OR diff GREATER 50)
    string(APPEND failures "JSON ${path} = ${got}, expected ${want} (+-5e-5)\n")
  endif()
endforeach()

if(failures)
  message(FATAL_ERROR "`attn ${ARGS}` failed its checks:\n${failures}--- output ---\n${all}")
endif()
message(STATUS "`attn ${ARGS}`: exit ${rc}, all checks passed")
