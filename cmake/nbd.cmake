# NBD export of backups (DESIGN.md sections 5 and 6; issue 6, first part;
# docs/nbd-export.md): the nbdkit plugin, the NbdExport process launcher, the
# `cairn-nbd-export` CLI and their tests. Included from the top-level
# CMakeLists.txt after the component directories.
#
#   nbdkit-cairn-plugin.so  nbdkit plugin (MODULE) serving one backup
#   cairn_nbd_export        library: NbdExport, key handover, plugin config
#   cairn-nbd-export        CLI: export a backup until SIGTERM
#   cairn_nbd_tests         unit tests (label unit)
#   e2e.nbd_export          end-to-end with nbdkit, nbdinfo, nbdcopy, qemu-img

pkg_check_modules(NBDKIT REQUIRED nbdkit)

# The storage code the plugin needs lives in the static libraries
# cairn_common and cairn_media_lib, which are built without -fPIC (Debian's
# default PIE code cannot go into a shared object). Rather than change those
# targets for everyone (a rebuild of their objects under other engineers'
# feet), their sources are compiled a second time, with PIC, into
# cairn_nbd_storage_pic, which only the plugin links. The source and link
# lists are read from the targets, so this stays in step with them.
set(_cairn_nbd_pic_sources)
set(_cairn_nbd_pic_libs)
foreach(_dep cairn_common cairn_media_lib)
  get_target_property(_srcs ${_dep} SOURCES)
  get_target_property(_dir ${_dep} SOURCE_DIR)
  foreach(_src IN LISTS _srcs)
    if(IS_ABSOLUTE "${_src}")
      list(APPEND _cairn_nbd_pic_sources "${_src}")
    else()
      list(APPEND _cairn_nbd_pic_sources "${_dir}/${_src}")
    endif()
  endforeach()
  get_target_property(_libs ${_dep} LINK_LIBRARIES)
  list(APPEND _cairn_nbd_pic_libs ${_libs})
endforeach()
list(REMOVE_ITEM _cairn_nbd_pic_libs cairn_common cairn_media_lib)
list(REMOVE_DUPLICATES _cairn_nbd_pic_libs)

# Sources shared by the plugin (PIC copy) and the library (normal build).
set(CAIRN_NBD_CORE_SOURCES
  ${PROJECT_SOURCE_DIR}/media_agent/exported_image.cc
  ${PROJECT_SOURCE_DIR}/media_agent/key_handover.cc
  ${PROJECT_SOURCE_DIR}/media_agent/nbd_plugin_config.cc
  ${PROJECT_SOURCE_DIR}/media_agent/read_only_store.cc)

add_library(cairn_nbd_storage_pic STATIC
  ${_cairn_nbd_pic_sources} ${CAIRN_NBD_CORE_SOURCES})
set_target_properties(cairn_nbd_storage_pic PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(cairn_nbd_storage_pic PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(cairn_nbd_storage_pic PUBLIC ${_cairn_nbd_pic_libs})

# The plugin. nbdkit loads it by path; only plugin_init is exported.
add_library(nbdkit-cairn-plugin MODULE
  ${PROJECT_SOURCE_DIR}/media_agent/nbd_plugin.cc)
set_target_properties(nbdkit-cairn-plugin PROPERTIES
  PREFIX ""
  OUTPUT_NAME nbdkit-cairn-plugin
  LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}
  POSITION_INDEPENDENT_CODE ON
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(nbdkit-cairn-plugin PRIVATE ${NBDKIT_INCLUDE_DIRS})
target_link_libraries(nbdkit-cairn-plugin PRIVATE
  cairn_nbd_storage_pic cairn_warnings)
# nbdkit_* symbols are left undefined: the nbdkit executable provides them
# when it loads the plugin (RTLD_NOW, so any other missing symbol fails at
# load time - the e2e test loads it).
install(TARGETS nbdkit-cairn-plugin LIBRARY DESTINATION lib/cairn)

# NbdExport and the plugin configuration, for programs (normal build).
add_library(cairn_nbd_export
  ${CAIRN_NBD_CORE_SOURCES}
  ${PROJECT_SOURCE_DIR}/media_agent/nbd_export.cc)
target_link_libraries(cairn_nbd_export
  PUBLIC cairn_media_lib cairn_common
  PRIVATE cairn_warnings OpenSSL::Crypto)

add_executable(cairn-nbd-export ${PROJECT_SOURCE_DIR}/media_agent/nbd_export_main.cc)
set_target_properties(cairn-nbd-export PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
target_link_libraries(cairn-nbd-export PRIVATE
  cairn_nbd_export cairn_cli CLI11::CLI11 cairn_warnings)
# Needs the plugin next to it (FindNbdPlugin).
add_dependencies(cairn-nbd-export nbdkit-cairn-plugin)
install(TARGETS cairn-nbd-export RUNTIME DESTINATION bin)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_nbd_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/nbd_export_test.cc)
  # cairn_testing is defined in tests/CMakeLists.txt (added later; CMake
  # resolves the name at generate time).
  target_link_libraries(cairn_nbd_tests PRIVATE
    cairn_nbd_export cairn_agent_lib cairn_media_lib cairn_common
    cairn_testing GTest::gtest_main cairn_warnings)
  gtest_discover_tests(cairn_nbd_tests
    PROPERTIES LABELS unit TIMEOUT 120
    DISCOVERY_TIMEOUT 60)

  add_test(NAME e2e.nbd_export
    COMMAND ${PROJECT_SOURCE_DIR}/tests/e2e/nbd_export.sh
            $<TARGET_FILE:cairn-agent> $<TARGET_FILE:cairn-media>
            $<TARGET_FILE:cairn-nbd-export>
            $<TARGET_FILE:nbdkit-cairn-plugin>)
  # Exit 77: nbdkit, nbdinfo, nbdcopy or qemu-img is not installed.
  set_tests_properties(e2e.nbd_export PROPERTIES
    LABELS e2e TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()

# The baseline of tests/bench/nbd_bench.sh: a direct read of the store (built
# with the tests too: it is small, and the script needs it).
if(CAIRN_BUILD_TESTS OR CAIRN_BUILD_BENCHMARKS)
  add_executable(cairn_store_read_bench
    ${PROJECT_SOURCE_DIR}/tests/bench/store_read_bench.cc)
  set_target_properties(cairn_store_read_bench PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests/bench)
  target_link_libraries(cairn_store_read_bench PRIVATE
    cairn_nbd_export cairn_warnings)
endif()
