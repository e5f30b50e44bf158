#include "common/config.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(ConfigTest, ReadsTypedValuesAndSections) {
  auto c = ConfigReader::LoadString(
      "store:\n  path: /srv/cairn\n  chunk_size: 4MiB\n  zstd_level: 3\n"
      "  encrypt: yes\nlog_level: info\n",
      "media.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  auto store = c->GetSection("store");
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*store->GetString("path", ""), "/srv/cairn");
  EXPECT_EQ(*store->GetSize("chunk_size", 0), 4u << 20);
  EXPECT_EQ(*store->GetInt("zstd_level", 1), 3);
  EXPECT_TRUE(*store->GetBool("encrypt", false));
  EXPECT_EQ(*store->GetInt("absent", 42), 42);
  EXPECT_TRUE(store->Finish().ok());
  EXPECT_EQ(*c->GetString("log_level", "warn"), "info");
  EXPECT_TRUE(c->Finish().ok());
}

TEST(ConfigTest, ErrorsNameFileKeyAndLine) {
  auto c = ConfigReader::LoadString("store:\n  path: /x\n  zstd_level: fast\n",
                                    "media.yaml");
  ASSERT_TRUE(c.ok());
  auto store = c->GetSection("store");
  ASSERT_TRUE(store.ok());
  auto level = store->GetInt("zstd_level", 1);
  ASSERT_FALSE(level.ok());
  EXPECT_EQ(level.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(level.status().message()),
            "media.yaml:3: store.zstd_level: expected an integer, got 'fast'");
}

TEST(ConfigTest, UnknownKeyIsAnError) {
  auto c = ConfigReader::LoadString("store:\n  chunck_size: 4MiB\n", "m.yaml");
  ASSERT_TRUE(c.ok());
  auto store = c->GetSection("store");
  ASSERT_TRUE(store->GetSize("chunk_size", 0).ok());
  Status s = store->Finish();
  EXPECT_EQ(std::string(s.message()),
            "m.yaml:2: unknown key 'store.chunck_size'");
}

TEST(ConfigTest, RepeatedKeyIsAnError) {
  // yaml-cpp would answer with the first and ignore the second.
  auto top = ConfigReader::LoadString("a: 1\nb: 2\na: 3\n", "d.yaml");
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(std::string(top.status().message()),
            "d.yaml:3: duplicate key 'a' (first at line 1)");
  auto nested =
      ConfigReader::LoadString("store:\n  path: /x\n  path: /y\n", "n.yaml");
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(std::string(nested.status().message()).find("duplicate key 'path'"),
            std::string::npos);
  EXPECT_TRUE(
      ConfigReader::LoadString("a:\n  x: 1\nb:\n  x: 2\n", "ok.yaml").ok());
}

TEST(ConfigTest, SyntaxErrorsAndBadSizes) {
  auto bad = ConfigReader::LoadString("a: [1, 2\nb: 3\n", "x.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("x.yaml:"),
            std::string::npos);
  auto list = ConfigReader::LoadString("- a\n- b\n", "y.yaml");
  EXPECT_FALSE(list.ok());
  EXPECT_EQ(*ParseByteSize("64K"), 65536u);
  EXPECT_EQ(*ParseByteSize(" 16 MiB "), 16u << 20);
  EXPECT_FALSE(ParseByteSize("4 parsecs").ok());
  EXPECT_FALSE(ParseByteSize("MiB").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999T").ok());
  EXPECT_EQ(ConfigReader::LoadFile("/nonexistent/cairn.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cairn
