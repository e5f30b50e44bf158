# Hardware profiles and the profile diff (DESIGN.md section 5; issue 5):
# the live collector, initramfs and module-index readers, the diff engine,
# the standalone `cairn-profile` CLI and their unit tests. Included from the
# top-level CMakeLists.txt after the component directories.

pkg_check_modules(KMOD REQUIRED IMPORTED_TARGET libkmod)
find_package(LibArchive REQUIRED)

# cairn_profile: everything about HardwareProfile and ProfileDiff.
add_library(cairn_profile
  ${PROJECT_SOURCE_DIR}/common/hardware_profile.cc
  ${PROJECT_SOURCE_DIR}/common/initramfs_reader.cc
  ${PROJECT_SOURCE_DIR}/common/module_index.cc
  ${PROJECT_SOURCE_DIR}/agent/root_dir.cc
  ${PROJECT_SOURCE_DIR}/agent/profile_config_parsers.cc
  ${PROJECT_SOURCE_DIR}/agent/profile_collector.cc
  ${PROJECT_SOURCE_DIR}/server/profile_diff.cc
  ${PROJECT_SOURCE_DIR}/server/customization_plan.cc)
target_link_libraries(cairn_profile
  PUBLIC cairn_proto cairn_common nlohmann_json::nlohmann_json
  PRIVATE cairn_warnings PkgConfig::KMOD LibArchive::LibArchive yaml-cpp)

# cairn-profile: collect and diff profiles without a server.
add_executable(cairn-profile ${PROJECT_SOURCE_DIR}/agent/profile_main.cc)
target_link_libraries(cairn-profile PRIVATE
  cairn_profile cairn_cli CLI11::CLI11 cairn_warnings)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_profile_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/profile_root_dir_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/profile_collector_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/profile_module_index_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/profile_initramfs_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/profile_diff_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/profile_file_test.cc)
  target_compile_definitions(cairn_profile_tests PRIVATE
    CAIRN_PROFILE_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data/profiles")
  target_link_libraries(cairn_profile_tests PRIVATE
    cairn_profile LibArchive::LibArchive GTest::gmock GTest::gtest_main
    cairn_warnings)
  gtest_discover_tests(cairn_profile_tests
    PROPERTIES LABELS unit TIMEOUT 120
    DISCOVERY_TIMEOUT 60)
endif()

# cairn_profile_offline: the offline collector (profiles of disk images
# through libguestfs). A separate library so that only its users link
# libguestfs.
pkg_check_modules(GUESTFS REQUIRED IMPORTED_TARGET libguestfs)
add_library(cairn_profile_offline
  ${PROJECT_SOURCE_DIR}/agent/offline_profile_collector.cc)
target_link_libraries(cairn_profile_offline
  PUBLIC cairn_profile
  PRIVATE cairn_warnings PkgConfig::GUESTFS)
target_link_libraries(cairn-profile PRIVATE cairn_profile_offline)

if(CAIRN_BUILD_TESTS)
  # Launches a libguestfs appliance per image (20-25 s under TCG): label
  # e2e. The Debian images come from tests/fixtures (FIXTURES_REQUIRED
  # debian_images builds them on a fresh machine first).
  add_executable(cairn_profile_offline_tests
    ${PROJECT_SOURCE_DIR}/tests/e2e/profile_offline_test.cc)
  target_compile_definitions(cairn_profile_offline_tests PRIVATE
    CAIRN_PROFILE_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data/profiles")
  target_link_libraries(cairn_profile_offline_tests PRIVATE
    cairn_profile_offline cairn_test_fixtures GTest::gmock GTest::gtest_main
    cairn_warnings)
  gtest_discover_tests(cairn_profile_offline_tests
    TEST_PREFIX "profile_offline."
    DISCOVERY_MODE PRE_TEST
    PROPERTIES
      LABELS e2e
      TIMEOUT 600
      RESOURCE_LOCK cairn_vm
      FIXTURES_REQUIRED debian_images
      ENVIRONMENT "LIBGUESTFS_BACKEND=direct;LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
endif()
