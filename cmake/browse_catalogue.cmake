# The file catalogue of a backup (DESIGN.md section 6; issue 7, "File
# catalogue"; docs/formats/file-catalogue.md): the walk of a mounted file
# system, the query index, reads through extents, and the catalogue store.
# Included from the top-level CMakeLists.txt after nbd.cmake.
#
#   cairn_file_catalogue       library: CatalogueFileSystem, CatalogueIndex,
#                              ReadFileFromExtents, CatalogueStore
#   cairn_catalogue_file_tests unit tests (label unit; they make ext4 images
#                              and loop-mount them, so they skip unless root)

add_library(cairn_file_catalogue
  ${PROJECT_SOURCE_DIR}/media_agent/file_catalogue.cc
  ${PROJECT_SOURCE_DIR}/media_agent/catalogue_store.cc)
target_link_libraries(cairn_file_catalogue
  PUBLIC cairn_proto cairn_nbd_export cairn_media_lib cairn_common
  PRIVATE cairn_warnings)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_catalogue_file_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/file_catalogue_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/catalogue_store_test.cc)
  # cairn_testing is defined in tests/CMakeLists.txt (added later; CMake
  # resolves the name at generate time).
  target_link_libraries(cairn_catalogue_file_tests PRIVATE
    cairn_file_catalogue cairn_agent_lib cairn_media_lib cairn_testing
    GTest::gtest_main cairn_warnings)
  # RESOURCE_LOCK cairn_loop: the tests use loop devices, as other suites do;
  # running them one at a time keeps /dev/loop* from running out.
  gtest_discover_tests(cairn_catalogue_file_tests
    PROPERTIES LABELS unit TIMEOUT 300 RESOURCE_LOCK cairn_loop
    DISCOVERY_TIMEOUT 60)
endif()
