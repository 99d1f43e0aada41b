# tests/fuzz/fuzz.cmake: libFuzzer targets for every decoder (included by
# tests/CMakeLists.txt). Only with -DKV_FUZZ=ON (clang); the sanitizers come
# from -DKV_SANITIZE=ON. docs/fuzzing.md explains the targets.
#
# Each target fuzz_X is registered twice with CTest:
#   fuzz_X       label "fuzz": KV_FUZZ_SECONDS (10 s) on a copy of the corpus
#   fuzz_X_soak  label "soak": KV_FUZZ_SOAK_SECONDS (300 s)
# Both run tests/fuzz/run_fuzz.sh, which gives libFuzzer an empty temporary
# directory first, so new inputs never land in the repository's corpus.
#
# libFuzzer needs the code under test compiled with coverage
# instrumentation. Rather than changing other modules' targets, each library
# a target needs is compiled a second time here (kvfz_<lib>: same sources,
# include directories and definitions, plus -fsanitize=fuzzer-no-link); the
# normal libraries stay exactly as their modules build them.
# A target whose library does not exist yet is skipped (if(TARGET ...)).

if(NOT KV_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "KV_FUZZ needs clang (CC=clang); fuzz targets skipped")
  return()
endif()

set(KV_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(KV_FUZZ_SECONDS 10 CACHE STRING "Seconds each fuzz target runs in make test")
set(KV_FUZZ_SOAK_SECONDS 300 CACHE STRING "Seconds each fuzz target runs in the soak run")

# kv_fuzz_clone_lib(LIB): defines kvfz_LIB, LIB rebuilt with coverage
# instrumentation, linking the kvfz_ clones of LIB's kv* dependencies.
function(kv_fuzz_clone_lib lib)
  if(TARGET kvfz_${lib})
    return()
  endif()
  get_target_property(srcs ${lib} SOURCES)
  get_target_property(dir ${lib} SOURCE_DIR)
  set(abs)
  foreach(s IN LISTS srcs)
    if(IS_ABSOLUTE "${s}" OR s MATCHES "^\\$<")
      list(APPEND abs "${s}")
    else()
      list(APPEND abs "${dir}/${s}")
    endif()
  endforeach()
  add_library(kvfz_${lib} STATIC EXCLUDE_FROM_ALL ${abs})
  target_compile_options(kvfz_${lib} PRIVATE -fsanitize=fuzzer-no-link)
  foreach(prop INCLUDE_DIRECTORIES COMPILE_DEFINITIONS COMPILE_OPTIONS)
    get_target_property(v ${lib} ${prop})
    if(v)
      set_property(TARGET kvfz_${lib} APPEND PROPERTY ${prop} "${v}")
    endif()
  endforeach()
  foreach(prop INTERFACE_INCLUDE_DIRECTORIES INTERFACE_COMPILE_DEFINITIONS)
    get_target_property(v ${lib} ${prop})
    if(v)
      set_property(TARGET kvfz_${lib} APPEND PROPERTY ${prop} "${v}")
    endif()
  endforeach()
  get_target_property(links ${lib} LINK_LIBRARIES)
  if(links)
    foreach(l IN LISTS links)
      if(TARGET ${l} AND l MATCHES "^kv")
        kv_fuzz_clone_lib(${l})
        target_link_libraries(kvfz_${lib} PUBLIC kvfz_${l})
      else()
        target_link_libraries(kvfz_${lib} PUBLIC ${l})
      endif()
    endforeach()
  endif()
endfunction()

# kv_fuzz_target(NAME LIBS...): builds tests/fuzz/NAME.c against the
# instrumented clones of LIBS and registers NAME and NAME_soak.
function(kv_fuzz_target name)
  add_executable(${name} ${KV_FUZZ_DIR}/${name}.c)
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  foreach(lib IN LISTS ARGN)
    kv_fuzz_clone_lib(${lib})
    target_link_libraries(${name} PRIVATE kvfz_${lib})
  endforeach()
  set(run ${KV_FUZZ_DIR}/run_fuzz.sh $<TARGET_FILE:${name}>
      ${KV_FUZZ_DIR}/corpus/${name})
  # KV_FUZZ_ARGS_<name>: extra libFuzzer options for this target.
  add_test(NAME ${name} COMMAND ${run} ${KV_FUZZ_SECONDS}
           ${KV_FUZZ_ARGS_${name}}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 120)
  add_test(NAME ${name}_soak COMMAND ${run} ${KV_FUZZ_SOAK_SECONDS}
           ${KV_FUZZ_ARGS_${name}}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  math(EXPR soak_timeout "${KV_FUZZ_SOAK_SECONDS} + 120")
  set_tests_properties(${name}_soak PROPERTIES LABELS soak
                       TIMEOUT ${soak_timeout})
endfunction()

if(TARGET kvproto)
  kv_fuzz_target(fuzz_mp kvproto)
  if(EXISTS ${PROJECT_SOURCE_DIR}/proto/wire.c)
    kv_fuzz_target(fuzz_wire kvproto)
  endif()
  if(EXISTS ${PROJECT_SOURCE_DIR}/proto/resp.c)
    kv_fuzz_target(fuzz_resp kvproto)
  endif()
  # http_req.c belongs to no library (kvorumd compiles it directly): the
  # target compiles it itself, with the target's instrumentation.
  if(EXISTS ${PROJECT_SOURCE_DIR}/proto/wire.c
     AND EXISTS ${PROJECT_SOURCE_DIR}/node/http_req.c)
    kv_fuzz_target(fuzz_http kvproto)
    target_sources(fuzz_http PRIVATE ${PROJECT_SOURCE_DIR}/node/http_req.c)
    target_include_directories(fuzz_http PRIVATE ${PROJECT_SOURCE_DIR}/node)
  endif()
endif()
if(TARGET kvauth)
  kv_fuzz_target(fuzz_auth kvauth)
endif()
if(TARGET kvconf)
  kv_fuzz_target(fuzz_conf kvconf)
endif()
if(TARGET kvobj)
  kv_fuzz_target(fuzz_obj kvobj)
  if(EXISTS ${PROJECT_SOURCE_DIR}/storage/crdt.c)
    kv_fuzz_target(fuzz_crdt kvobj)
  endif()
endif()
if(TARGET kvring)
  kv_fuzz_target(fuzz_ring kvring)
endif()
if(TARGET kvgossip AND TARGET kvring)
  kv_fuzz_target(fuzz_gossip kvgossip)
endif()

# fuzz_node drives the node core through the simulator's harness
# (kvsim_harness), which tests/sim/sim.cmake defines after this file is
# included: register it once the whole directory is read.
function(kv_fuzz_node_target)
  # Room for many records (the seeds are single small frames).
  set(KV_FUZZ_ARGS_fuzz_node -max_len=4096)
  if(TARGET kvsim_harness)
    kv_fuzz_target(fuzz_node kvsim_harness)
  endif()
endfunction()
cmake_language(DEFER CALL kv_fuzz_node_target)

# gen_corpus writes the seed corpus with the real encoders (normal libraries,
# no fuzzer runtime). Regenerate with:
#   cmake --build BUILD --target gen_corpus && BUILD/tests/gen_corpus tests/fuzz/corpus
# Each part is compiled in only when its library exists.
if(TARGET kvproto)
  add_executable(gen_corpus EXCLUDE_FROM_ALL ${KV_FUZZ_DIR}/gen_corpus.c)
  target_link_libraries(gen_corpus PRIVATE kvproto)
  target_include_directories(gen_corpus PRIVATE ${PROJECT_SOURCE_DIR})
  if(EXISTS ${PROJECT_SOURCE_DIR}/proto/wire.c)
    target_compile_definitions(gen_corpus PRIVATE GEN_WIRE=1)
  endif()
  foreach(lib kvobj kvring kvgossip)
    if(TARGET ${lib} AND (NOT lib STREQUAL "kvgossip" OR TARGET kvring))
      string(TOUPPER ${lib} up)
      target_link_libraries(gen_corpus PRIVATE ${lib})
      target_compile_definitions(gen_corpus PRIVATE GEN_${up}=1)
    endif()
  endforeach()
endif()
