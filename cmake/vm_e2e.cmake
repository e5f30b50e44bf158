# cairn_vm_e2e(NAME SCRIPT TIMEOUT ARG...): registers tests/e2e/SCRIPT ARG...
# as the ctest NAME for an end-to-end test that runs QEMU or libguestfs:
# label e2e, one such test at a time (RESOURCE_LOCK cairn_vm: two TCG guests
# on two cores time out), after the fixture images are built
# (FIXTURES_REQUIRED debian_images), with Cairn's nbdkit plugin and TCG-only
# libguestfs in its environment; exit 77 is a skip. CAIRN_FIXTURE_DIR is
# where the fixture images are ($CAIRN_FIXTURE_CACHE or
# /var/cache/cairn/fixtures, as tests/fixtures/build-debian-image.sh).
if(DEFINED ENV{CAIRN_FIXTURE_CACHE})
  set(CAIRN_FIXTURE_DIR "$ENV{CAIRN_FIXTURE_CACHE}")
else()
  set(CAIRN_FIXTURE_DIR "/var/cache/cairn/fixtures")
endif()

function(cairn_vm_e2e name script timeout)
  add_test(NAME ${name}
    COMMAND ${PROJECT_SOURCE_DIR}/tests/e2e/${script} ${ARGN})
  set_tests_properties(${name} PROPERTIES
    LABELS e2e TIMEOUT ${timeout} SKIP_RETURN_CODE 77
    RESOURCE_LOCK cairn_vm
    ENVIRONMENT "CAIRN_NBD_PLUGIN=$<TARGET_FILE:nbdkit-cairn-plugin>;LIBGUESTFS_BACKEND=direct;LIBGUESTFS_BACKEND_SETTINGS=force_tcg"
    FIXTURES_REQUIRED debian_images)
endfunction()
