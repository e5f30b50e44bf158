// server/restore_builds.h and server/boot_templates.h on a real catalog with
// the recorded machine profiles: plans, the cache key, refusals that queue
// nothing, cached images, templates. (The builds themselves run a libguestfs
// appliance: tests/e2e/network_restore_build.sh.)
#include "server/restore_builds.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hardware_profile.h"
#include "server/boot_templates.h"
#include "server/job_engine.h"
#include "tests/unit/profile_test_util.h"

namespace cairn {
namespace {

using profile_test::ScratchDir;
using profile_test::Shape;

class RestoreBuildsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(scratch_.path() + "/catalog");
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = *std::move(c);
    profiles_ = std::make_unique<ClientProfiles>(catalog_.get());
    MediaAgent embedded;
    embedded.media_agent_id = kEmbeddedMediaId;
    ASSERT_TRUE(catalog_->PutMediaAgent(embedded).ok());
    MediaAgent other;
    other.media_agent_id = "ma2";
    ASSERT_TRUE(catalog_->PutMediaAgent(other).ok());
    AddClient("src", "bios-ahci-e1000");
    AddClient("lab", "virtio-blk-net");
    AddClient("nvme", "uefi-nvme");
    AddBackup("bk1", "src", kEmbeddedMediaId);
    AddBackup("bk2", "src", "ma2");
    builds_ = std::make_unique<RestoreBuilds>(catalog_.get(), profiles_.get(),
                                              &events_, RestoreBuildsOptions{});
  }
  void TearDown() override {
    builds_.reset();
    events_.Shutdown();
  }

  void AddClient(const std::string& id, const std::string& shape) {
    Client c;
    c.client_id = id;
    ASSERT_TRUE(catalog_->CreateClient(c).ok());
    uint64_t raw = 0;
    auto zstd = CompressHardwareProfile(Shape(shape), &raw);
    ASSERT_TRUE(zstd.ok());
    ASSERT_TRUE(profiles_->Record(id, *zstd, raw, 1000).ok());
  }

  void AddBackup(const std::string& id, const std::string& client,
                 const std::string& media) {
    BackupEntry b;
    b.backup_id = id;
    b.client_id = client;
    b.media_agent_id = media;
    b.manifest_ref = id;
    b.created_us = 2000;
    b.image_size = 2ull << 30;
    auto sha = profiles_->LatestId(client);
    ASSERT_TRUE(sha.ok());
    b.profile_ref = *sha;
    ASSERT_TRUE(catalog_->CommitBackup(b, Catalog::kNoJob).ok());
  }

  size_t JobCount() {
    auto jobs = catalog_->ListJobs();
    EXPECT_TRUE(jobs.ok());
    return jobs.ok() ? jobs->size() : 0;
  }

  RestoreTargetSpec ForClient(const std::string& backup,
                              const std::string& client) {
    RestoreTargetSpec spec;
    spec.source_backup_id = backup;
    spec.target_client_id = client;
    return spec;
  }

  ScratchDir scratch_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<ClientProfiles> profiles_;
  JobEvents events_;
  std::unique_ptr<RestoreBuilds> builds_;
};

TEST_F(RestoreBuildsTest, PlansFromTheRecordedAndTheTargetsProfile) {
  auto plan = builds_->Plan(ForClient("bk1", "lab"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->plan.source_backup_id(), "bk1");
  EXPECT_EQ(plan->plan.target(), "client:lab");
  EXPECT_EQ(plan->plan.target_profile_sha256(), *profiles_->LatestId("lab"));
  EXPECT_TRUE(plan->plan.blockers().empty());
  bool virtio = false;
  for (const auto& m : plan->plan.initramfs_modules()) {
    virtio |= m == "virtio_blk";
  }
  EXPECT_TRUE(virtio) << plan->plan.DebugString();

  EXPECT_TRUE(
      absl::IsNotFound(builds_->Plan(ForClient("nosuch", "lab")).status()));
  EXPECT_TRUE(
      absl::IsNotFound(builds_->Plan(ForClient("bk1", "nosuch")).status()));
  RestoreTargetSpec both = ForClient("bk1", "lab");
  both.target_profile_zstd = "x";
  EXPECT_TRUE(absl::IsInvalidArgument(builds_->Plan(both).status()));
  RestoreTargetSpec bad_nic = ForClient("bk1", "lab");
  bad_nic.nic_map = {"eth0"};
  EXPECT_TRUE(absl::IsInvalidArgument(builds_->Plan(bad_nic).status()));
  RestoreTargetSpec no_template = ForClient("bk1", "lab");
  no_template.template_name = "nosuch";
  EXPECT_TRUE(absl::IsNotFound(builds_->Plan(no_template).status()));
}

TEST_F(RestoreBuildsTest, BuildKeyIgnoresNamesAndFollowsTheChanges) {
  auto plan = builds_->Plan(ForClient("bk1", "lab"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  v1::CustomizationPlan p = plan->plan;
  const std::string key = BuildKey(p);
  EXPECT_EQ(key.substr(0, 65), p.target_profile_sha256() + "/");
  EXPECT_EQ(key.size(), 64u + 1 + 16);
  v1::CustomizationPlan renamed = p;
  renamed.set_target("profile:whatever");
  renamed.add_steps("described differently");
  EXPECT_EQ(BuildKey(renamed), key);
  v1::CustomizationPlan more = p;
  more.add_initramfs_modules("nvme");
  EXPECT_NE(BuildKey(more), key);
  v1::CustomizationPlan tools = p;
  tools.add_disable_units("qemu-guest-agent.service");
  EXPECT_NE(BuildKey(tools), key);
}

TEST_F(RestoreBuildsTest, RefusalsQueueNothing) {
  // Blockers: a UEFI target whose disk has no room for an ESP.
  auto blocked = builds_->Start(ForClient("bk1", "nvme"), false, "alice");
  ASSERT_FALSE(blocked.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(blocked.status())) << blocked.status();
  EXPECT_NE(std::string(blocked.status().message()).find("blockers"),
            std::string::npos);
  // A backup on a separate media agent is built there.
  auto remote = builds_->Start(ForClient("bk2", "lab"), false, "alice");
  EXPECT_TRUE(absl::IsUnimplemented(remote.status())) << remote.status();
  EXPECT_NE(std::string(remote.status().message()).find("ma2"),
            std::string::npos);
  // This server has no embedded store (repository null).
  auto local = builds_->Start(ForClient("bk1", "lab"), false, "alice");
  EXPECT_TRUE(absl::IsUnimplemented(local.status())) << local.status();
  // A damaged backup is not built.
  ASSERT_TRUE(catalog_->SetBackupStatus("bk1", BackupStatus::kDamaged).ok());
  auto damaged = builds_->Start(ForClient("bk1", "lab"), false, "alice");
  EXPECT_TRUE(absl::IsFailedPrecondition(damaged.status())) << damaged.status();
  EXPECT_EQ(JobCount(), 0u);
}

TEST_F(RestoreBuildsTest, AnIdenticalBuildReturnsTheRecordedImage) {
  auto plan = builds_->Plan(ForClient("bk1", "lab"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  // What a finished build records.
  Job spec;
  spec.kind = JobKind::kRestoreBuild;
  spec.client_id = "src";
  spec.backup_id = "bk1";
  auto job = catalog_->CreateJob(spec);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(catalog_->StartJob(job->job_id).ok());
  BackupEntry image;
  image.backup_id = "bk1-c1";
  image.client_id = "src";
  image.media_agent_id = kEmbeddedMediaId;
  image.kind = BackupKind::kCustomized;
  image.parent_id = "bk1";
  image.manifest_ref = "bk1-c1";
  image.created_us = 3000;
  image.build_key = BuildKey(plan->plan);
  ASSERT_TRUE(catalog_->CommitBackup(image, job->job_id).ok());

  auto cached = builds_->Start(ForClient("bk1", "lab"), false, "alice");
  ASSERT_TRUE(cached.ok()) << cached.status();
  ASSERT_TRUE(cached->cached.has_value());
  EXPECT_EQ(cached->cached->backup_id, "bk1-c1");
  EXPECT_FALSE(cached->job.has_value());
  EXPECT_EQ(JobCount(), 1u);
  // --rebuild ignores the cache (and this server cannot build).
  EXPECT_TRUE(absl::IsUnimplemented(
      builds_->Start(ForClient("bk1", "lab"), true, "alice").status()));
  // A damaged image is not reused.
  ASSERT_TRUE(catalog_->SetBackupStatus("bk1-c1", BackupStatus::kDamaged).ok());
  EXPECT_TRUE(absl::IsUnimplemented(
      builds_->Start(ForClient("bk1", "lab"), false, "alice").status()));
}

TEST_F(RestoreBuildsTest, TemplatesComeFromImagesWithAProfile) {
  BootTemplates templates(catalog_.get(), profiles_.get());
  auto t = templates.Import("debian12", "bk1", "stock", "alice");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->image_id, "bk1");
  EXPECT_EQ(t->kernel_version, Shape("bios-ahci-e1000").running_kernel());
  EXPECT_EQ(t->profile_sha256, *profiles_->LatestId("src"));
  EXPECT_EQ(t->created_by, "alice");
  EXPECT_TRUE(absl::IsAlreadyExists(
      templates.Import("debian12", "bk1", "", "alice").status()));
  EXPECT_TRUE(
      absl::IsNotFound(templates.Import("t2", "nosuch", "", "alice").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      templates.Import("a/b", "bk1", "", "alice").status()));
  // An image recorded without a profile has no known kernel.
  BackupEntry bare;
  bare.backup_id = "bare";
  bare.client_id = "src";
  bare.media_agent_id = kEmbeddedMediaId;
  bare.manifest_ref = "bare";
  bare.created_us = 5000;
  ASSERT_TRUE(catalog_->CommitBackup(bare, Catalog::kNoJob).ok());
  auto no_profile = templates.Import("t3", "bare", "", "alice");
  EXPECT_TRUE(absl::IsFailedPrecondition(no_profile.status()))
      << no_profile.status();

  // A plan naming the template resolves it (the choice itself is the
  // planner's business: customization_plan_test.cc).
  RestoreTargetSpec spec = ForClient("bk1", "lab");
  spec.template_name = "debian12";
  EXPECT_TRUE(builds_->Plan(spec).ok());
  // A template on another media agent than the backup cannot be used.
  auto remote = templates.Import("remote", "bk2", "", "alice");
  ASSERT_TRUE(remote.ok()) << remote.status();
  spec.template_name = "remote";
  EXPECT_TRUE(absl::IsFailedPrecondition(builds_->Plan(spec).status()));

  EXPECT_EQ(TemplateKernel(v1::HardwareProfile()).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cairn
