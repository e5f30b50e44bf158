# The sandboxed browse path (DESIGN.md section 6; issue 7; docs/browse.md
# "The sandboxed path"): a backup's NBD export attached read-only to a
# libguestfs appliance, which catalogues and reads its file systems with its
# own kernel. Included from the top-level CMakeLists.txt before browse.cmake.
#
#   cairn_guestfs_appliance   library: GuestfsAppliance (a libguestfs handle
#                             with a watchdog; also used by restore builds)
#   cairn_sandbox_disk        library: SandboxDisk
#   cairn_sandbox_disk_tests  e2e tests (label e2e; one appliance launch per
#                             run, 20-25 s under TCG; need qemu, the
#                             libguestfs appliance, nbdkit, sfdisk, mke2fs,
#                             mkswap and debugfs; the comparison with the
#                             host path also root)

if(NOT TARGET PkgConfig::GUESTFS)
  pkg_check_modules(GUESTFS REQUIRED IMPORTED_TARGET libguestfs)
endif()

add_library(cairn_guestfs_appliance
  ${PROJECT_SOURCE_DIR}/media_agent/guestfs_appliance.cc)
target_link_libraries(cairn_guestfs_appliance
  PUBLIC cairn_common PkgConfig::GUESTFS
  PRIVATE cairn_warnings)

add_library(cairn_sandbox_disk
  ${PROJECT_SOURCE_DIR}/media_agent/sandbox_disk.cc)
target_link_libraries(cairn_sandbox_disk
  PUBLIC cairn_guestfs_appliance cairn_file_catalogue cairn_nbd_export
         cairn_proto PkgConfig::GUESTFS
  PRIVATE cairn_warnings)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_sandbox_disk_tests
    ${PROJECT_SOURCE_DIR}/tests/e2e/sandbox_disk_test.cc)
  # cairn_testing is defined in tests/CMakeLists.txt (added later; CMake
  # resolves the name at generate time).
  target_link_libraries(cairn_sandbox_disk_tests PRIVATE
    cairn_sandbox_disk cairn_file_catalogue cairn_nbd_export cairn_agent_lib
    cairn_media_lib cairn_testing GTest::gtest_main cairn_warnings)
  # The backup is exported with Cairn's nbdkit plugin.
  add_dependencies(cairn_sandbox_disk_tests nbdkit-cairn-plugin)
  # One appliance per test process (RESOURCE_LOCK cairn_vm, as the offline
  # profile tests); the host-path comparison loop-mounts the image when root.
  gtest_discover_tests(cairn_sandbox_disk_tests
    TEST_PREFIX "sandbox_disk."
    DISCOVERY_MODE PRE_TEST
    PROPERTIES
      LABELS e2e
      TIMEOUT 900
      RESOURCE_LOCK cairn_vm
      ENVIRONMENT "LIBGUESTFS_BACKEND=direct;LIBGUESTFS_BACKEND_SETTINGS=force_tcg;CAIRN_NBD_PLUGIN=$<TARGET_FILE:nbdkit-cairn-plugin>")
endif()
