# Security: TLS credentials, peer identity and the internal CA
# (DESIGN.md section 8; common/tls.h, common/peer_identity.h,
# server/certificate_authority.h). Included from the top-level CMakeLists.txt
# after the component directories.

# cairn_tls: gRPC TLS credentials, CA pinning, enrollment key/CSR, and the
# caller's identity and role.
add_library(cairn_tls
  ${PROJECT_SOURCE_DIR}/common/tls.cc
  ${PROJECT_SOURCE_DIR}/common/peer_identity.cc)
target_link_libraries(cairn_tls
  PUBLIC cairn_common gRPC::grpc++
  PRIVATE cairn_warnings OpenSSL::SSL OpenSSL::Crypto)

# cairn_enroll_client: the client half of enrollment, shared by cairn-agent
# and cairn-media.
add_library(cairn_enroll_client ${PROJECT_SOURCE_DIR}/common/enrollment_client.cc)
target_link_libraries(cairn_enroll_client
  PUBLIC cairn_tls cairn_proto
  PRIVATE cairn_warnings)

# cairn_ca: cairn-server's certificate authority.
add_library(cairn_ca ${PROJECT_SOURCE_DIR}/server/certificate_authority.cc)
target_link_libraries(cairn_ca
  PUBLIC cairn_tls
  PRIVATE cairn_warnings OpenSSL::Crypto)

if(CAIRN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  # cairn_testing is defined in tests/ (added later); CMake resolves the
  # name at generate time.
  add_executable(cairn_security_tests
    ${PROJECT_SOURCE_DIR}/tests/unit/tls_ca_test.cc)
  target_link_libraries(cairn_security_tests PRIVATE
    cairn_ca cairn_tls cairn_proto cairn_testing GTest::gmock GTest::gtest_main
    OpenSSL::SSL OpenSSL::Crypto cairn_warnings)
  gtest_discover_tests(cairn_security_tests
    PROPERTIES LABELS unit TIMEOUT 120
    DISCOVERY_TIMEOUT 60)
endif()
