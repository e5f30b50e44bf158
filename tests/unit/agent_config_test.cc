// agent.yaml in the agent's state directory, and the cancellation wrappers.
#include "agent/agent_config.h"

#include <gtest/gtest.h>

#include "agent/cancellation.h"
#include "common/chunk_format.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

TEST(AgentConfigTest, RoundTripsThroughTheStateDirectory) {
  testing::ScratchDir dir;
  AgentConfig c;
  c.server = "backup.example.com:7443";
  c.identity = "pc-17";
  c.hostname = "pc 17 \"quoted\"";
  c.heartbeat_interval = std::chrono::seconds(3);
  c.reconnect_max_delay = std::chrono::seconds(30);
  c.progress_interval = std::chrono::seconds(1);
  c.threads = 2;
  ASSERT_TRUE(WriteAgentConfig(dir.path(), c).ok());
  auto back = LoadAgentConfig(dir.path());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->server, c.server);
  EXPECT_EQ(back->identity, c.identity);
  EXPECT_EQ(back->hostname, c.hostname);
  EXPECT_EQ(back->heartbeat_interval, c.heartbeat_interval);
  EXPECT_EQ(back->reconnect_max_delay, c.reconnect_max_delay);
  EXPECT_EQ(back->progress_interval, c.progress_interval);
  EXPECT_EQ(back->threads, 2);
}

TEST(AgentConfigTest, MissingFileSaysToEnroll) {
  testing::ScratchDir dir;
  auto c = LoadAgentConfig(dir.path());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(c.status().message()).find("enroll"),
            std::string::npos);
}

TEST(AgentConfigTest, BadValuesNameTheKey) {
  auto missing = ParseAgentConfig("identity: pc1\n", "agent.yaml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(missing.status().message()).find("server"),
            std::string::npos);
  auto typo =
      ParseAgentConfig("server: a:1\nidentity: pc1\nheartbeat: 3\n", "a.yaml");
  EXPECT_NE(std::string(typo.status().message()).find("heartbeat"),
            std::string::npos);
  auto range = ParseAgentConfig(
      "server: a:1\nidentity: pc1\nheartbeat_seconds: 0\n", "a.yaml");
  EXPECT_NE(std::string(range.status().message()).find("heartbeat_seconds"),
            std::string::npos);
  auto ok = ParseAgentConfig("server: a:1\nidentity: pc1\n", "a.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->hostname, "pc1");  // defaults to the identity
  EXPECT_EQ(ok->heartbeat_interval, std::chrono::seconds(10));
}

class CountingSink : public ChunkSink {
 public:
  StatusOr<std::vector<bool>> HasChunks(std::span<const ChunkId> ids) override {
    ++calls;
    return std::vector<bool>(ids.size(), false);
  }
  Status PutChunk(const ChunkId&, std::string_view) override {
    ++calls;
    return absl::OkStatus();
  }
  Status Commit(const std::string&, std::string_view) override {
    ++calls;
    return absl::OkStatus();
  }
  int calls = 0;
};

TEST(CancellationTest, SinkRefusesEverythingOnceCancelled) {
  CountingSink base;
  CancellationFlag flag;
  CancellableChunkSink sink(&base, &flag);
  ChunkId id = ComputeChunkId("x", nullptr);
  std::vector<ChunkId> ids = {id};
  EXPECT_TRUE(sink.PutChunk(id, "s").ok());
  flag.Cancel();
  EXPECT_EQ(sink.HasChunks(ids).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sink.PutChunk(id, "s").code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sink.Commit("b", "m").code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(base.calls, 1);  // nothing reached the media agent after cancel
}

}  // namespace
}  // namespace cairn
