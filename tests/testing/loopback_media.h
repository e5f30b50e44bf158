// LoopbackMedia: a media agent on loopback for network tests. Under a
// scratch directory it creates a throwaway internal CA ("ca/"), a server
// certificate, a fresh Repository ("repo/") with a DataPath for media agent
// kMediaId, and serves a MediaServiceHandler on 127.0.0.1 (ephemeral port)
// with mutual TLS 1.3, exactly as a media agent does. Tests then get client
// credentials for any identity and role, and session tickets signed with the
// server certificate's key (the key DataPath trusts).
//
// Thread safety: the accessors and the credential/ticket helpers may be
// called from any thread once Start has returned.
#ifndef CAIRN_TESTS_TESTING_LOOPBACK_MEDIA_H_
#define CAIRN_TESTS_TESTING_LOOPBACK_MEDIA_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/role.h"
#include "common/session_ticket.h"
#include "common/status.h"
#include "common/tls.h"
#include "media_agent/data_path.h"
#include "media_agent/media_service.h"
#include "media_agent/repository.h"
#include "server/certificate_authority.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {

class LoopbackMedia {
 public:
  // The media agent id of the DataPath, and so of every ticket.
  static constexpr char kMediaId[] = "media-1";

  // Creates CA, certificate and repository under `dir` (which must exist)
  // and starts the server.
  static StatusOr<std::unique_ptr<LoopbackMedia>> Start(const std::string& dir);

  // Shuts the server down, giving calls in flight five seconds.
  ~LoopbackMedia();

  LoopbackMedia(const LoopbackMedia&) = delete;
  LoopbackMedia& operator=(const LoopbackMedia&) = delete;

  // "localhost:<port>": what clients dial (the name the certificate holds).
  const std::string& address() const { return address_; }
  CertificateAuthority* ca() const { return ca_.get(); }
  const IssuedCertificate& server_cert() const { return server_cert_; }
  Repository* repo() const { return repo_.get(); }

  // TLS files of a fresh client certificate for `identity` with `role`,
  // signed by the CA as enrollment would.
  StatusOr<TlsFiles> ClientTlsFiles(const std::string& identity,
                                    Role role) const;

  // A channel to the media service with ClientTlsFiles(identity, role).
  // Records a gtest failure (and still returns a channel, or nullptr) if the
  // certificate cannot be made.
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& identity,
                                            Role role) const;

  // A session ticket for kMediaId valid for an hour, signed with the server
  // certificate's key, or with `key_pem` when it is not empty.
  std::string Ticket(SessionTicket::Operation op, const std::string& client,
                     const std::string& backup_id, uint64_t job,
                     const std::string& parent = "",
                     const std::string& key_pem = "") const;

 private:
  LoopbackMedia() = default;

  std::unique_ptr<CertificateAuthority> ca_;
  IssuedCertificate server_cert_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<DataPath> data_path_;
  std::unique_ptr<MediaServiceHandler> handler_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// A gtest fixture with a LoopbackMedia in a fresh scratch directory, started
// in SetUp and shut down in TearDown. Derived fixtures that override either
// call this one's.
class LoopbackMediaTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override { media_.reset(); }

  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& identity,
                                            Role role) {
    return media_->ChannelFor(identity, role);
  }
  std::string Ticket(SessionTicket::Operation op, const std::string& client,
                     const std::string& backup_id, uint64_t job,
                     const std::string& parent = "",
                     const std::string& key_pem = "") {
    return media_->Ticket(op, client, backup_id, job, parent, key_pem);
  }

  ScratchDir dir_;
  std::unique_ptr<LoopbackMedia> media_;
  std::string address_;         // media_->address()
  Repository* repo_ = nullptr;  // media_->repo()
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_LOOPBACK_MEDIA_H_
