# Browse and file-level recovery (DESIGN.md section 6; issue 7;
# docs/browse.md): the media agent's Browser and its gRPC service, wired into
# cairn-media and cairn-server's embedded media agent. The pieces it builds on
# are in cmake/browse_mount.cmake (pseudo-disk, mount sessions) and
# cmake/browse_catalogue.cmake (file catalogue). Included from the top-level
# CMakeLists.txt after those.
#
#   cairn_browse         library: Browser, BrowseServiceHandler
#   cairn_browser_tests  unit tests of Browser (label unit)
#   e2e.browse           end-to-end with the real daemons on a fixture image

add_library(cairn_browse
  ${PROJECT_SOURCE_DIR}/media_agent/browser.cc
  ${PROJECT_SOURCE_DIR}/media_agent/browse_service.cc
  ${PROJECT_SOURCE_DIR}/media_agent/sandbox_sessions.cc)
target_link_libraries(cairn_browse
  PUBLIC cairn_pseudo_disk cairn_sandbox_disk cairn_file_catalogue cairn_nbd_export cairn_net
         cairn_tls cairn_proto gRPC::grpc++
  PRIVATE spdlog::spdlog cairn_warnings)

# The daemons that host a media agent serve BrowseService.
target_link_libraries(cairn_media_daemon PUBLIC cairn_browse)
target_link_libraries(cairn_server_lib PUBLIC cairn_browse)
# Their mount sessions start nbdkit with the Cairn plugin.
add_dependencies(cairn-server nbdkit-cairn-plugin)
add_dependencies(cairn-media nbdkit-cairn-plugin)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  # Browser on a real backup of a real ext4 image (root, FUSE, loop
  # devices, nbdkit: it skips without them).
  add_executable(cairn_browser_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/browser_test.cc)
  target_link_libraries(cairn_browser_tests PRIVATE
    cairn_browse cairn_agent_lib cairn_media_lib cairn_testing
    GTest::gtest_main cairn_warnings)
  add_dependencies(cairn_browser_tests nbdkit-cairn-plugin)
  gtest_discover_tests(cairn_browser_tests
    PROPERTIES LABELS unit TIMEOUT 300 RESOURCE_LOCK cairn_loop
               ENVIRONMENT "CAIRN_NBD_PLUGIN=$<TARGET_FILE:nbdkit-cairn-plugin>"
    DISCOVERY_TIMEOUT 60)

  # The same tests against the sandboxed path (a libguestfs appliance per
  # test, 20-40 s under TCG): label e2e.
  add_executable(cairn_browser_sandbox_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/browser_test.cc)
  target_compile_definitions(cairn_browser_sandbox_tests PRIVATE
    CAIRN_BROWSER_SANDBOX=1)
  target_link_libraries(cairn_browser_sandbox_tests PRIVATE
    cairn_browse cairn_agent_lib cairn_media_lib cairn_testing
    GTest::gtest_main cairn_warnings)
  add_dependencies(cairn_browser_sandbox_tests nbdkit-cairn-plugin)
  gtest_discover_tests(cairn_browser_sandbox_tests
    TEST_PREFIX "browser_sandbox."
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS e2e TIMEOUT 600 RESOURCE_LOCK cairn_vm
               ENVIRONMENT "LIBGUESTFS_BACKEND=direct;LIBGUESTFS_BACKEND_SETTINGS=force_tcg;CAIRN_NBD_PLUGIN=$<TARGET_FILE:nbdkit-cairn-plugin>")

  # The fixture cache as tests/fixtures sets it (that directory is added
  # later, and its variables are not visible here).
  if(DEFINED ENV{CAIRN_FIXTURE_CACHE})
    set(_cairn_browse_fixtures "$ENV{CAIRN_FIXTURE_CACHE}")
  else()
    set(_cairn_browse_fixtures "/var/cache/cairn/fixtures")
  endif()
  add_test(NAME e2e.browse
    COMMAND ${PROJECT_SOURCE_DIR}/tests/e2e/browse.sh
            $<TARGET_FILE:cairn-server> $<TARGET_FILE:cairn-agent>
            $<TARGET_FILE:cairnctl>
            ${_cairn_browse_fixtures}/debian-bios-ahci.raw)
  # Exit 77: not root, or no FUSE / nbdfuse on this host.
  set_tests_properties(e2e.browse PROPERTIES
    LABELS e2e TIMEOUT 900 SKIP_RETURN_CODE 77
    RESOURCE_LOCK cairn_loop
    ENVIRONMENT "CAIRN_NBD_PLUGIN=$<TARGET_FILE:nbdkit-cairn-plugin>"
    FIXTURES_REQUIRED debian_images)
endif()
