// QmpClient against a real QEMU: `qemu-system-x86_64 -machine none
// -nodefaults -display none` with a QMP socket - no guest, starts in well
// under a second - so the framing, the greeting, capabilities negotiation,
// command replies, QMP errors and asynchronous events are QEMU's own.
#include "media_agent/qmp_client.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "common/process_util.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"

namespace cairn {
namespace {

using nlohmann::json;

class QmpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto qemu = FindProgram("", "qemu-system-x86_64", "qemu-system-x86");
    if (!qemu.ok()) GTEST_SKIP() << qemu.status();
    auto dir = TempDir::Create("cairn-qmp-test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    socket_ = dir_->path() + "/qmp.sock";
    SpawnOptions so;
    so.stderr_path = dir_->path() + "/qemu.log";
    auto child = ChildProcess::Spawn(
        {*qemu, "-machine", "none", "-nodefaults", "-display", "none", "-qmp",
         "unix:" + socket_ + ",server=on,wait=off"},
        so);
    ASSERT_TRUE(child.ok()) << child.status();
    qemu_ = *std::move(child);
  }

  std::unique_ptr<QmpClient> Connect() {
    auto client = QmpClient::Connect(socket_, absl::Seconds(30));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::unique_ptr<TempDir> dir_;
  std::string socket_;
  std::unique_ptr<ChildProcess> qemu_;
};

TEST_F(QmpClientTest, GreetingAndQueryStatus) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->connected());
  ASSERT_TRUE(client->greeting().contains("version"));
  EXPECT_GE(client->greeting()["version"]["qemu"]["major"].get<int>(), 2);

  auto status = client->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(status->is_object()) << status->dump();
  EXPECT_TRUE(status->contains("running")) << status->dump();
  EXPECT_TRUE((*status)["status"].is_string()) << status->dump();

  // A command with arguments: the answer is for exactly that command.
  auto schema =
      client->Execute("query-command-line-options", {{"option", "machine"}});
  ASSERT_TRUE(schema.ok()) << schema.status();
  ASSERT_TRUE(schema->is_array());
  ASSERT_EQ(schema->size(), 1u);
  EXPECT_EQ((*schema)[0]["option"], "machine");
}

TEST_F(QmpClientTest, UnknownCommandIsAClearStatus) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  auto r = client->Execute("cairn-no-such-command");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
  const std::string msg(r.status().message());
  EXPECT_NE(msg.find("cairn-no-such-command"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CommandNotFound"), std::string::npos) << msg;

  // Bad arguments to a real command: GenericError, with QEMU's text.
  auto bad = client->Execute("query-command-line-options", {{"option", 42}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition)
      << bad.status();
  EXPECT_NE(std::string(bad.status().message()).find("option"),
            std::string::npos)
      << bad.status();

  // The connection is still usable after errors.
  EXPECT_TRUE(client->Execute("query-status").ok());
}

TEST_F(QmpClientTest, WaitForEventTimesOutWithoutEvent) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  auto e = client->WaitForEvent("SHUTDOWN", absl::Milliseconds(200));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kDeadlineExceeded)
      << e.status();
  EXPECT_TRUE(client->connected());
}

TEST_F(QmpClientTest, QuitDeliversShutdownAndClosesConnection) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  auto r = client->Execute("quit");
  // QEMU answers {} and then closes; either the reply or the close may come
  // first to us, but never a QMP error.
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  }
  auto e = client->WaitForEvent("SHUTDOWN", absl::Seconds(30));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)["event"], "SHUTDOWN");
  EXPECT_FALSE((*e)["data"]["guest"].get<bool>()) << e->dump();
  EXPECT_TRUE(e->contains("timestamp"));

  std::optional<int> st = qemu_->WaitUntil(absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(DescribeWaitStatus(*st), "exited with status 0");

  auto after = client->Execute("query-status", json(), absl::Seconds(5));
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable)
      << after.status();
  EXPECT_FALSE(client->connected());
  auto none = client->WaitForEvent("SHUTDOWN", absl::Seconds(1));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(QmpClientTest, OtherEventsStayQueued) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  // `stop` on a machine that runs emits STOP; `cont` emits RESUME. Wait for
  // RESUME first: STOP must still be there afterwards.
  ASSERT_TRUE(client->Execute("stop").ok());
  ASSERT_TRUE(client->Execute("cont").ok());
  auto resume = client->WaitForEvent("RESUME", absl::Seconds(30));
  ASSERT_TRUE(resume.ok()) << resume.status();
  auto stop = client->WaitForAnyEvent({"SHUTDOWN", "STOP"}, absl::Seconds(30));
  ASSERT_TRUE(stop.ok()) << stop.status();
  EXPECT_EQ((*stop)["event"], "STOP");
  EXPECT_TRUE(client->TakeEvents().empty());
}

TEST(QmpClientConnectTest, MissingSocketTimesOut) {
  auto dir = TempDir::Create("cairn-qmp-test");
  ASSERT_TRUE(dir.ok());
  auto client = QmpClient::Connect((*dir)->path() + "/none.sock",
                                   absl::Milliseconds(200));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kDeadlineExceeded)
      << client.status();
}

TEST(QmpClientConnectTest, ErrorMapping) {
  EXPECT_EQ(QmpErrorToStatus("x", {{"class", "DeviceNotFound"},
                                   {"desc", "Device 'd' not found"}})
                .code(),
            absl::StatusCode::kNotFound);
  Status s = QmpErrorToStatus(
      "block-stream", {{"class", "GenericError"}, {"desc", "Node is busy"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(s.message()),
            "QMP block-stream failed (GenericError): Node is busy");
}

}  // namespace
}  // namespace cairn
