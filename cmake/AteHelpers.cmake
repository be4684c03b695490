# SPDX-License-Identifier: Apache-2.0
# Build helpers shared by every folder.

set(ATE_GEN_DIR "${CMAKE_BINARY_DIR}/generated")
set(ATE_PROTO_GEN_DIR "${ATE_GEN_DIR}/proto")
file(MAKE_DIRECTORY "${ATE_PROTO_GEN_DIR}")

# ate_protobuf_c(<target> PROTOS <file.proto>... IMPORT_DIRS <dir>... [LINK <target>...])
# Generates protobuf-c code at build time into the build tree (nothing
# generated is committed) and wraps it in a static library.  Each proto is
# named relative to the first import dir that contains it.
function(ate_protobuf_c target)
  cmake_parse_arguments(A "" "" "PROTOS;IMPORT_DIRS;LINK" ${ARGN})
  set(srcs)
  set(iflags)
  foreach(d ${A_IMPORT_DIRS})
    list(APPEND iflags "-I${d}")
  endforeach()
  foreach(p ${A_PROTOS})
    get_filename_component(abs "${p}" ABSOLUTE)
    set(rel "")
    foreach(d ${A_IMPORT_DIRS})
      get_filename_component(dabs "${d}" ABSOLUTE)
      file(RELATIVE_PATH r "${dabs}" "${abs}")
      if(NOT r MATCHES "^\\.\\.")
        set(rel "${r}")
        break()
      endif()
    endforeach()
    if(rel STREQUAL "")
      message(FATAL_ERROR "${p} is not under any of ${A_IMPORT_DIRS}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" stem "${rel}")
    set(outc "${ATE_PROTO_GEN_DIR}/${stem}.pb-c.c")
    set(outh "${ATE_PROTO_GEN_DIR}/${stem}.pb-c.h")
    add_custom_command(
      OUTPUT "${outc}" "${outh}"
      COMMAND "${PROTOC_C}" "--c_out=${ATE_PROTO_GEN_DIR}" ${iflags} "${abs}"
      DEPENDS "${abs}"
      COMMENT "protoc-c ${rel}"
      VERBATIM)
    list(APPEND srcs "${outc}")
  endforeach()
  add_library(${target} STATIC ${srcs})
  target_include_directories(${target} PUBLIC "${ATE_PROTO_GEN_DIR}")
  # Generated code: no warnings policy of ours; kata's oci.proto has a
  # member named `linux`.
  target_compile_options(${target} PRIVATE -w -Ulinux)
  target_link_libraries(${target} PUBLIC PkgConfig::PROTOBUFC ${A_LINK})
endfunction()

# Environment every test gets.
set(ATE_TEST_ENV
  "ATE_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "ATE_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
  "ATE_SHARED_DIR=${ATE_SHARED_DIR}"
  "ATE_PYTHON3=${ATE_PYTHON3}")
if(ATE_SANITIZE OR ATE_FUZZ)
  list(APPEND ATE_TEST_ENV "ATE_SANITIZED=1"
       "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1"
       "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()

# ate_add_unit_test(<name> SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT s])
# A cmocka test binary run by ctest.  Exit code 77 means "skipped" (for
# tests that need root or a network namespace they cannot get).
function(ate_add_unit_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA ${A_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    SKIP_RETURN_CODE 77 LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "${ATE_TEST_ENV}")
endfunction()

# ate_add_script_test(<name> COMMAND ... [LABELS ...] [TIMEOUT s] [ENV k=v...]
#                     [DEPENDS target...] [RUN_SERIAL])
# Integration tests written as scripts (Python 3 from Debian, shell).
function(ate_add_script_test name)
  cmake_parse_arguments(A "RUN_SERIAL" "TIMEOUT" "COMMAND;LABELS;ENV" ${ARGN})
  if(NOT A_LABELS)
    set(A_LABELS integration)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${A_COMMAND})
  set(env ${ATE_TEST_ENV} ${A_ENV})
  set_tests_properties(${name} PROPERTIES
    SKIP_RETURN_CODE 77 LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "${env}")
  if(A_RUN_SERIAL)
    set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# ate_add_fuzz_target(<name> SOURCES ... [LIBS ...] CORPUS <dir>)
# The source defines LLVMFuzzerTestOneInput.  In a normal build the target
# becomes a regression test that replays every file of the corpus; with
# ATE_FUZZ=ON (clang) it is a libFuzzer binary that ctest runs for
# ATE_FUZZ_SECONDS, seeded from the committed corpus (new inputs go to the
# build tree, never into the source tree).
function(ate_add_fuzz_target name)
  cmake_parse_arguments(A "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  if(ATE_FUZZ)
    add_executable(fuzz_${name} ${A_SOURCES})
    target_link_libraries(fuzz_${name} PRIVATE ${A_LIBS})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    set(work "${CMAKE_BINARY_DIR}/fuzz-corpus/${name}")
    set(art "${CMAKE_BINARY_DIR}/fuzz-artifacts/")
    file(MAKE_DIRECTORY "${work}" "${art}")
    add_test(NAME fuzz_${name}
      COMMAND fuzz_${name} -max_total_time=${ATE_FUZZ_SECONDS} -rss_limit_mb=2048
              -timeout=10 -artifact_prefix=${art}${name}- "${work}" "${A_CORPUS}")
    set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz
      TIMEOUT 600 ENVIRONMENT "${ATE_TEST_ENV}")
  else()
    add_executable(fuzz_${name}_regress ${A_SOURCES}
                   "${PROJECT_SOURCE_DIR}/test/fuzz/regress_main.c")
    target_link_libraries(fuzz_${name}_regress PRIVATE ${A_LIBS})
    add_test(NAME fuzz_${name}_regress COMMAND fuzz_${name}_regress "${A_CORPUS}")
    set_tests_properties(fuzz_${name}_regress PROPERTIES LABELS unit
      TIMEOUT 300 ENVIRONMENT "${ATE_TEST_ENV}")
  endif()
endfunction()
