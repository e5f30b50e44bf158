#include "tests/testing/loopback_media.h"

#include <gtest/gtest.h>

#include <chrono>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/remote_media.h"

namespace cairn::testing {

StatusOr<std::unique_ptr<LoopbackMedia>> LoopbackMedia::Start(
    const std::string& dir) {
  std::unique_ptr<LoopbackMedia> m(new LoopbackMedia());
  CAIRN_ASSIGN_OR_RETURN(
      m->ca_, CertificateAuthority::Create(dir + "/ca", "Cairn test CA"));
  CAIRN_ASSIGN_OR_RETURN(m->server_cert_,
                         m->ca_->IssueServerCertificate({}, {}));
  RepositoryOptions o;
  o.create_if_missing = true;
  CAIRN_ASSIGN_OR_RETURN(m->repo_, Repository::Open(dir + "/repo", o));
  m->data_path_ = std::make_unique<DataPath>(m->repo_.get(), kMediaId,
                                             m->server_cert_.cert_pem);
  m->handler_ = std::make_unique<MediaServiceHandler>(m->data_path_.get());

  CAIRN_ASSIGN_OR_RETURN(
      auto creds,
      MakeServerCredentials({m->ca_->CertificatePem(), m->server_cert_.cert_pem,
                             m->server_cert_.key_pem}));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", creds, &port);
  builder.SetMaxReceiveMessageSize(kMediaMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMediaMaxMessageBytes);
  builder.RegisterService(m->handler_.get());
  m->server_ = builder.BuildAndStart();
  if (m->server_ == nullptr) {
    return absl::UnavailableError("cannot start the loopback media server");
  }
  m->address_ = "localhost:" + std::to_string(port);
  return m;
}

LoopbackMedia::~LoopbackMedia() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
  }
}

StatusOr<TlsFiles> LoopbackMedia::ClientTlsFiles(const std::string& identity,
                                                 Role role) const {
  CAIRN_ASSIGN_OR_RETURN(KeyAndCsr csr, CreateKeyAndCsr(identity));
  CAIRN_ASSIGN_OR_RETURN(std::string cert,
                         ca_->SignCsr(csr.csr_pem, identity, role));
  return TlsFiles{ca_->CertificatePem(), std::move(cert),
                  std::move(csr.key_pem)};
}

std::shared_ptr<grpc::Channel> LoopbackMedia::ChannelFor(
    const std::string& identity, Role role) const {
  auto files = ClientTlsFiles(identity, role);
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return nullptr;
  auto creds = MakeChannelCredentials(*files);
  EXPECT_TRUE(creds.ok()) << creds.status();
  if (!creds.ok()) return nullptr;
  return grpc::CreateCustomChannel(address_, *creds, MediaChannelArguments());
}

std::string LoopbackMedia::Ticket(SessionTicket::Operation op,
                                  const std::string& client,
                                  const std::string& backup_id, uint64_t job,
                                  const std::string& parent,
                                  const std::string& key_pem) const {
  SessionTicket t;
  t.operation = op;
  t.client_id = client;
  t.job_id = job;
  t.backup_id = backup_id;
  t.parent_backup_id = parent;
  t.media_id = kMediaId;
  t.expires_unix_us = absl::ToUnixMicros(absl::Now() + absl::Hours(1));
  auto signed_ticket =
      SignTicket(t, key_pem.empty() ? server_cert_.key_pem : key_pem);
  EXPECT_TRUE(signed_ticket.ok()) << signed_ticket.status();
  return signed_ticket.ok() ? *std::move(signed_ticket) : std::string();
}

void LoopbackMediaTest::SetUp() {
  auto media = LoopbackMedia::Start(dir_.path());
  ASSERT_TRUE(media.ok()) << media.status();
  media_ = *std::move(media);
  address_ = media_->address();
  repo_ = media_->repo();
}

}  // namespace cairn::testing
