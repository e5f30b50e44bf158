# The media agent's pseudo-disk (DESIGN.md section 6; issue 7): a backup
# exported over NBD (cmake/nbd.cmake), presented to the host as a file by
# nbdfuse, cut into read-only loop devices per partition and mounted
# read-only, plus reference-counted mount sessions of backups. Included from
# the top-level CMakeLists.txt after nbd.cmake.
#
#   cairn_pseudo_disk         library: ProbePartitions (libblkid), PseudoDisk,
#                             CleanStalePseudoDisks, MountSessionManager
#   cairn_browse_mount_tests  unit tests (label unit; need root, /dev/fuse,
#                             /dev/loop-control, nbdkit and nbdfuse, else
#                             they skip)

pkg_check_modules(BLKID REQUIRED IMPORTED_TARGET blkid)

add_library(cairn_pseudo_disk
  ${PROJECT_SOURCE_DIR}/media_agent/partition_probe.cc
  ${PROJECT_SOURCE_DIR}/media_agent/pseudo_disk.cc
  ${PROJECT_SOURCE_DIR}/media_agent/mount_sessions.cc)
target_link_libraries(cairn_pseudo_disk
  PUBLIC cairn_nbd_export cairn_common
  PRIVATE PkgConfig::BLKID cairn_warnings spdlog::spdlog)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_browse_mount_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/pseudo_disk_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/mount_sessions_test.cc)
  # cairn_testing is defined in tests/CMakeLists.txt (added later; CMake
  # resolves the name at generate time).
  target_link_libraries(cairn_browse_mount_tests PRIVATE
    cairn_pseudo_disk cairn_agent_lib cairn_media_lib cairn_testing
    GTest::gtest_main cairn_warnings)
  # The session tests export backups with Cairn's nbdkit plugin.
  add_dependencies(cairn_browse_mount_tests nbdkit-cairn-plugin)
  # Loop devices, FUSE mounts and nbdkit processes are machine-wide: these
  # tests never run in parallel with one another (RESOURCE_LOCK).
  gtest_discover_tests(cairn_browse_mount_tests
    PROPERTIES LABELS unit TIMEOUT 300 RESOURCE_LOCK cairn_loop
               ENVIRONMENT "CAIRN_NBD_PLUGIN=$<TARGET_FILE:nbdkit-cairn-plugin>"
    DISCOVERY_TIMEOUT 60)
endif()
