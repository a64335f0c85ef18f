# check_write_keeps_old.cmake — a write that fails must keep the file it was
# meant to replace (issue 17): put known bytes in FILE, run `attn ARGS` with
# files limited to 1 KiB (sh's `ulimit -f 2`, SIGXFSZ ignored, so the write
# fails with EFBIG), expect exit code 1 and a message naming FILE, then FILE
# must hold the same bytes and no temporary file may be left beside it.
#   cmake -DEXE=attn "-DARGS=heatmap --out x.png" -DFILE=x.png -P check_write_keeps_old.cmake
cmake_minimum_required(VERSION 3.25)
get_filename_component(dir "${FILE}" DIRECTORY)
get_filename_component(name "${FILE}" NAME)
file(MAKE_DIRECTORY "${dir}")
set(old "the previous contents of ${name}, which a failed write must not touch\n")
file(WRITE "${FILE}" "${old}")
file(GLOB before RELATIVE "${dir}" "${dir}/.*")

separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND sh -c "trap '' XFSZ; ulimit -f 2; exec \"$@\"" sh ${EXE} ${args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(failures "")
if(NOT rc EQUAL 1)
  string(APPEND failures "exit code ${rc}, expected 1\n")
endif()
string(FIND "${out}${err}" "${FILE}" at)
if(at EQUAL -1)
  string(APPEND failures "the message does not name ${FILE}\n")
endif()
file(READ "${FILE}" now)
if(NOT now STREQUAL old)
  string(APPEND failures "${FILE} changed: it now holds ${now}\n")
endif()
file(GLOB after RELATIVE "${dir}" "${dir}/.*")
if(NOT after STREQUAL before)
  string(APPEND failures "files left in ${dir}: ${after}\n")
endif()
if(failures)
  message(FATAL_ERROR "`attn ${ARGS}` under a 1 KiB file-size limit:\n${failures}output:\n${out}${err}")
endif()
