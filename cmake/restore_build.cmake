# Restore builds (DESIGN.md section 5; issue 6; docs/restore-build.md): a
# backup customized for a target machine in a libguestfs appliance over a
# copy-on-write overlay of its NBD export, stored as a new image that shares
# every unchanged chunk. Included from the top-level CMakeLists.txt after
# browse_sandbox.cmake (cairn_guestfs_appliance) and nbd.cmake.
#
#   cairn_restore_build        library: GuestConfigEdits, ImageCustomizer,
#                              DerivedImage, RestoreBuilder, ImageExport
#   cairn_restore_build_tests  unit tests (label unit): the config edits and
#                              the plan
#   e2e.restore_build          end-to-end: the debian-bios-ahci fixture
#                              backed up, planned for a virtio-blk +
#                              virtio-net target with a larger disk, built,
#                              and booted under QEMU (label e2e)
#   e2e.restore_build_same_hw  end-to-end: debian-uefi-gpt restored onto its
#                              own hardware model boots and differs from
#                              the backup only where the plan changed
#                              something (label e2e)
#   e2e.restore_build_template_kernel
#                              end-to-end: an NVMe target the source kernel
#                              cannot drive; refused unless the boot
#                              template's kernel is chosen; then built and
#                              booted under OVMF (label e2e)
#   e2e.image_export           end-to-end: `cairn-media export` to raw,
#                              qcow2, vmdk and vhdx, compared and booted
#                              (label e2e)

pkg_check_modules(LIBNBD REQUIRED IMPORTED_TARGET libnbd)

add_library(cairn_restore_build
  ${PROJECT_SOURCE_DIR}/media_agent/guest_config_edits.cc
  ${PROJECT_SOURCE_DIR}/media_agent/disk_shrink.cc
  ${PROJECT_SOURCE_DIR}/media_agent/image_customizer.cc
  ${PROJECT_SOURCE_DIR}/media_agent/derived_image.cc
  ${PROJECT_SOURCE_DIR}/media_agent/restore_builder.cc
  ${PROJECT_SOURCE_DIR}/media_agent/image_export.cc)
target_link_libraries(cairn_restore_build
  PUBLIC cairn_guestfs_appliance cairn_nbd_export cairn_media_lib cairn_proto
         cairn_common
  PRIVATE PkgConfig::LIBNBD nlohmann_json::nlohmann_json cairn_warnings)

# `cairn-media restore build` (media_agent/main.cc).
target_link_libraries(cairn-media PRIVATE cairn_restore_build cairn_profile)
add_dependencies(cairn-media nbdkit-cairn-plugin)
# cairn-server builds on its embedded media agent (server/restore_builds.h).
add_dependencies(cairn-server nbdkit-cairn-plugin)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(cairn_restore_build_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/guest_config_edits_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/disk_shrink_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/customization_plan_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/image_export_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/derived_image_test.cc
    ${PROJECT_SOURCE_DIR}/tests/unit/restore_builds_test.cc)
  target_compile_definitions(cairn_restore_build_tests PRIVATE
    CAIRN_PROFILE_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data/profiles")
  target_link_libraries(cairn_restore_build_tests PRIVATE
    cairn_restore_build cairn_server_lib cairn_profile cairn_agent_lib
    cairn_testing GTest::gmock GTest::gtest_main cairn_warnings)
  gtest_discover_tests(cairn_restore_build_tests
    TEST_PREFIX "restore_build."
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS unit TIMEOUT 120)

  cairn_vm_e2e(e2e.restore_build restore_build.sh 1500
    $<TARGET_FILE:cairn-agent> $<TARGET_FILE:cairn-media>
    $<TARGET_FILE:cairn-profile> $<TARGET_FILE:cairn-nbd-export>
    $<TARGET_FILE:cairn-boot-check>
    ${CAIRN_FIXTURE_DIR}/debian-bios-ahci.raw
    ${PROJECT_SOURCE_DIR}/tests/data/profiles)

  # Issue 6's proof: debian-uefi-gpt restored onto its own hardware model
  # (tests/data/profiles/uefi-ahci-e1000) boots, and differs from the backup
  # only where the plan changed something (qemu-img compare).
  cairn_vm_e2e(e2e.restore_build_same_hw restore_build_same_hw.sh 1200
    $<TARGET_FILE:cairn-agent> $<TARGET_FILE:cairn-media>
    $<TARGET_FILE:cairn-profile> $<TARGET_FILE:cairn-nbd-export>
    $<TARGET_FILE:cairn-boot-check>
    ${CAIRN_FIXTURE_DIR}/debian-uefi-gpt.raw
    ${PROJECT_SOURCE_DIR}/tests/data/profiles)

  # The template kernel (docs/restore-build.md): a source whose kernel lacks
  # the NVMe driver is refused for an NVMe target unless the user chooses a
  # boot template's kernel; with it, the build boots under OVMF on NVMe.
  cairn_vm_e2e(e2e.restore_build_template_kernel restore_build_template_kernel.sh 2400
    $<TARGET_FILE:cairn-agent> $<TARGET_FILE:cairn-media>
    $<TARGET_FILE:cairn-profile> $<TARGET_FILE:cairn-nbd-export>
    $<TARGET_FILE:cairn-boot-check>
    ${CAIRN_FIXTURE_DIR}/debian-bios-ahci.raw
    ${PROJECT_SOURCE_DIR}/tests/data/profiles)

  # The same through the storage manager (server/restore_builds.h): plan,
  # build, cache and cancel with cairnctl, boot templates, and delivery of
  # the customized image by the target's agent, booted under QEMU.
  cairn_vm_e2e(e2e.network_restore_build network_restore_build.sh 1500
    $<TARGET_FILE:cairn-server> $<TARGET_FILE:cairn-agent>
    $<TARGET_FILE:cairnctl> $<TARGET_FILE:cairn-boot-check>
    ${CAIRN_FIXTURE_DIR}/debian-bios-ahci.raw
    ${PROJECT_SOURCE_DIR}/tests/data/profiles)

  # `cairn-media export` (media_agent/image_export.h, docs/export.md): the
  # fixture backed up, exported as raw, qcow2, vmdk and vhdx, compared with
  # qemu-img, refusals, and the vmdk and vhdx booted under QEMU.
  cairn_vm_e2e(e2e.image_export image_export.sh 1500
    $<TARGET_FILE:cairn-agent> $<TARGET_FILE:cairn-media>
    $<TARGET_FILE:cairn-boot-check>
    ${CAIRN_FIXTURE_DIR}/debian-bios-ahci.raw)
endif()
