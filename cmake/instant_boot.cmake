# Instant boot (DESIGN.md section 5, "Delivery"; issue 6; docs/instant-boot.md):
# a VM started straight from a backup's NBD export with a local qcow2
# overlay, while QEMU's block-stream copies the backup into the overlay so
# the VM ends up running from the local disk alone. Included from the
# top-level CMakeLists.txt after nbd.cmake and restore_build.cmake.
#
#   cairn_instant_boot     library: QmpClient (QEMU Machine Protocol),
#                          RunInstantBoot; linked into cairn-media
#                          (`cairn-media instant-boot`)
#   cairn_qmp_client_tests unit tests (label unit): QmpClient against a real
#                          `qemu-system-x86_64 -machine none` (no guest)
#   e2e.instant_boot       end-to-end: the debian-bios-ahci fixture backed up
#                          into an encrypted store, instant-booted on AHCI to
#                          its serial marker, the copy completed, the overlay
#                          self-contained and booted alone; refusals (label
#                          e2e)

add_library(cairn_instant_boot
  ${PROJECT_SOURCE_DIR}/media_agent/qmp_client.cc
  ${PROJECT_SOURCE_DIR}/media_agent/instant_boot.cc)
target_link_libraries(cairn_instant_boot
  PUBLIC cairn_nbd_export cairn_common nlohmann_json::nlohmann_json absl::time
  PRIVATE cairn_warnings)

# `cairn-media instant-boot` (media_agent/main.cc).
target_link_libraries(cairn-media PRIVATE cairn_instant_boot)
add_dependencies(cairn-media nbdkit-cairn-plugin)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_qmp_client_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/qmp_client_test.cc)
  target_link_libraries(cairn_qmp_client_tests PRIVATE
    cairn_instant_boot cairn_common GTest::gtest_main cairn_warnings)
  gtest_discover_tests(cairn_qmp_client_tests
    TEST_PREFIX "qmp_client."
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS unit TIMEOUT 120)

  cairn_vm_e2e(e2e.instant_boot instant_boot.sh 1800
    $<TARGET_FILE:cairn-agent> $<TARGET_FILE:cairn-media>
    $<TARGET_FILE:cairn-boot-check>
    ${CAIRN_FIXTURE_DIR}/debian-bios-ahci.raw)
endif()
