// cairnctl's command line: commands, flags, global flags on either side of
// the command, and the value parsers.
#include <gtest/gtest.h>

#include "cli/ctl_args.h"

namespace cairn::ctl {
namespace {

std::vector<std::string> With(std::vector<std::string> args) {
  std::vector<std::string> all = {"--server", "127.0.0.1:7443", "--cred-dir",
                                  "/srv/cairn/admin"};
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

TEST(CairnctlArgsTest, ParsesEveryCommand) {
  auto token =
      ParseCtlArgs(With({"token", "create", "--role", "media", "--ttl", "2h"}));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->command, CtlCommand::kTokenCreate);
  EXPECT_EQ(token->role, "media");
  EXPECT_EQ(token->ttl, "2h");
  EXPECT_EQ(token->server, "127.0.0.1:7443");
  EXPECT_EQ(token->cred_dir, "/srv/cairn/admin");

  EXPECT_EQ(ParseCtlArgs(With({"clients", "list"}))->command,
            CtlCommand::kClientsList);
  auto show = ParseCtlArgs(With({"clients", "show", "pc-17"}));
  EXPECT_EQ(show->command, CtlCommand::kClientsShow);
  EXPECT_EQ(show->id, "pc-17");
  EXPECT_EQ(ParseCtlArgs(With({"clients", "revoke", "pc-17"}))->command,
            CtlCommand::kClientsRevoke);

  auto backup =
      ParseCtlArgs(With({"backup", "start", "--client", "pc-17", "--source",
                         "/dev/sda", "--incremental", "--wait"}));
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->command, CtlCommand::kBackupStart);
  EXPECT_EQ(backup->client, "pc-17");
  EXPECT_EQ(backup->source, "/dev/sda");
  EXPECT_TRUE(backup->incremental);
  EXPECT_TRUE(backup->wait);

  auto backups = ParseCtlArgs(With({"backups", "list", "--client", "pc-17"}));
  EXPECT_EQ(backups->command, CtlCommand::kBackupsList);
  EXPECT_EQ(backups->client, "pc-17");
  EXPECT_EQ(ParseCtlArgs(With({"backups", "show", "b1"}))->id, "b1");

  auto restore = ParseCtlArgs(
      With({"restore", "start", "--backup", "b1", "--target", "/tmp/out.img"}));
  ASSERT_TRUE(restore.ok()) << restore.status();
  EXPECT_EQ(restore->command, CtlCommand::kRestoreStart);
  EXPECT_EQ(restore->backup, "b1");
  EXPECT_EQ(restore->target, "/tmp/out.img");
  EXPECT_FALSE(restore->wait);
  EXPECT_FALSE(restore->resume);
  EXPECT_FALSE(restore->no_verify);
  EXPECT_FALSE(restore->reboot);
  auto resume =
      ParseCtlArgs(With({"restore", "start", "--backup", "b1", "--target",
                         "/dev/sdb", "--resume", "--no-verify", "--reboot"}));
  ASSERT_TRUE(resume.ok()) << resume.status();
  EXPECT_TRUE(resume->resume);
  EXPECT_TRUE(resume->no_verify);
  EXPECT_TRUE(resume->reboot);
  EXPECT_FALSE(ParseCtlArgs(With({"restore", "start", "--backup", "b1",
                                  "--target", "/dev/sdb", "--reboot=maybe"}))
                   .ok());

  auto plan = ParseCtlArgs(With(
      {"restore", "plan", "--backup", "b1", "--target", "lab-7", "--nic-map",
       "enp0s2=ens3", "--drop-guest-tools", "--out", "plan.json"}));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->command, CtlCommand::kRestorePlan);
  EXPECT_EQ(plan->backup, "b1");
  EXPECT_EQ(plan->client, "lab-7");
  EXPECT_TRUE(plan->drop_guest_tools);
  EXPECT_EQ(plan->out, "plan.json");
  ASSERT_EQ(plan->nic_map.size(), 1u);
  EXPECT_EQ(
      ParseCtlArgs(With({"restore", "plan", "--backup", "b1"})).status().code(),
      absl::StatusCode::kInvalidArgument)
      << "a target is required";
  EXPECT_FALSE(ParseCtlArgs(With({"restore", "plan", "--backup", "b1",
                                  "--target", "c", "--target-file", "f"}))
                   .ok());
  EXPECT_FALSE(ParseCtlArgs(With({"restore", "plan", "--backup", "b1",
                                  "--target", "c", "--nic-map", "nope"}))
                   .ok());

  auto jobs = ParseCtlArgs(With({"jobs", "list", "--state", "running"}));
  EXPECT_EQ(jobs->command, CtlCommand::kJobsList);
  EXPECT_EQ(jobs->state, "running");
  EXPECT_EQ(ParseCtlArgs(With({"jobs", "watch", "12"}))->command,
            CtlCommand::kJobsWatch);
  EXPECT_EQ(ParseCtlArgs(With({"jobs", "cancel", "12"}))->id, "12");
}

TEST(CairnctlArgsTest, RestoreBuildAndTemplates) {
  auto build =
      ParseCtlArgs(With({"restore", "build", "--backup", "b1", "--target",
                         "lab-7", "--conflict-choice", "use-template-kernel",
                         "--template", "debian12", "--rebuild", "--wait"}));
  ASSERT_TRUE(build.ok()) << build.status();
  EXPECT_EQ(build->command, CtlCommand::kRestoreBuild);
  EXPECT_EQ(build->backup, "b1");
  EXPECT_EQ(build->client, "lab-7");
  EXPECT_EQ(build->template_name, "debian12");
  EXPECT_TRUE(build->rebuild);
  EXPECT_TRUE(build->wait);
  EXPECT_FALSE(ParseCtlArgs(With({"restore", "build", "--backup", "b1"})).ok())
      << "a target is required";
  auto no_choice = ParseCtlArgs(With({"restore", "build", "--backup", "b1",
                                      "--target", "c", "--template", "t"}));
  ASSERT_FALSE(no_choice.ok());
  EXPECT_NE(
      std::string(no_choice.status().message()).find("use-template-kernel"),
      std::string::npos);

  auto import =
      ParseCtlArgs(With({"template", "import", "--name", "debian12",
                         "--from-backup", "b1", "--description", "stock"}));
  ASSERT_TRUE(import.ok()) << import.status();
  EXPECT_EQ(import->command, CtlCommand::kTemplateImport);
  EXPECT_EQ(import->template_name, "debian12");
  EXPECT_EQ(import->backup, "b1");
  EXPECT_EQ(import->description, "stock");
  EXPECT_FALSE(ParseCtlArgs(With({"template", "import", "--name", "t"})).ok());
  EXPECT_EQ(ParseCtlArgs(With({"template", "list"}))->command,
            CtlCommand::kTemplateList);
  EXPECT_EQ(ParseCtlArgs(With({"template", "show", "debian12"}))->id,
            "debian12");
  EXPECT_EQ(ParseCtlArgs(With({"template", "delete", "debian12"}))->command,
            CtlCommand::kTemplateDelete);
  EXPECT_FALSE(ParseCtlArgs(With({"template", "show"})).ok());

  auto exp = ParseCtlArgs(With({"export", "--backup", "b1", "--format", "vmdk",
                                "--out", "b1.vmdk", "--force"}));
  ASSERT_TRUE(exp.ok()) << exp.status();
  EXPECT_EQ(exp->command, CtlCommand::kExport);
  EXPECT_EQ(exp->format, "vmdk");
  EXPECT_EQ(exp->out, "b1.vmdk");
  EXPECT_TRUE(exp->force);
  EXPECT_FALSE(ParseCtlArgs(With({"export", "--backup", "b1", "--format", "ova",
                                  "--out", "x"}))
                   .ok());
  EXPECT_FALSE(
      ParseCtlArgs(With({"export", "--backup", "b1", "--format", "raw"})).ok());
}

TEST(CairnctlArgsTest, GlobalFlagsMayFollowTheCommand) {
  auto inv = ParseCtlArgs({"clients", "list", "--json", "--server", "h:1",
                           "--cred-dir", "/c", "--timeout", "5s"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_TRUE(inv->json);
  EXPECT_EQ(inv->server, "h:1");
  EXPECT_EQ(inv->timeout, "5s");
}

TEST(CairnctlArgsTest, UsageErrorsAreInvalidArgument) {
  auto code = [](std::vector<std::string> args) {
    return ParseCtlArgs(args).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(With({})), kInvalid);           // no command
  EXPECT_EQ(code(With({"clients"})), kInvalid);  // no leaf
  EXPECT_EQ(code(With({"backup", "start", "--client", "x"})), kInvalid);
  EXPECT_EQ(code(With({"token", "create", "--role", "admin"})), kInvalid);
  EXPECT_EQ(code(With({"token", "create", "--role", "agent", "--ttl", "8d"})),
            kInvalid);
  EXPECT_EQ(code(With({"jobs", "list", "--state", "done"})), kInvalid);
  EXPECT_EQ(code(With({"jobs", "watch", "twelve"})), kInvalid);
  EXPECT_EQ(code(With({"clients", "list", "--bogus"})), kInvalid);
  EXPECT_EQ(code({"clients", "list", "--cred-dir", "/c"}), kInvalid);
  auto no_server = ParseCtlArgs({"clients", "list", "--cred-dir", "/c"});
  EXPECT_NE(std::string(no_server.status().message()).find("--server"),
            std::string::npos);
}

TEST(CairnctlArgsTest, ValueParsers) {
  EXPECT_EQ(*ParseDuration("90"), std::chrono::seconds(90));
  EXPECT_EQ(*ParseDuration("500ms"), std::chrono::milliseconds(500));
  EXPECT_EQ(*ParseDuration("30m"), std::chrono::minutes(30));
  EXPECT_EQ(*ParseDuration("7d"), std::chrono::hours(168));
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("h").ok());
  EXPECT_FALSE(ParseDuration("1w").ok());
  EXPECT_FALSE(ParseDuration("-5s").ok());
  EXPECT_EQ(*ParseTtlSeconds("1h"), 3600);
  EXPECT_EQ(*ParseTtlSeconds("7d"), 7 * 86400);
  EXPECT_FALSE(ParseTtlSeconds("0s").ok());
  EXPECT_FALSE(ParseTtlSeconds("500ms").ok());
  EXPECT_EQ(*ParseTokenRole("agent"), v1::ROLE_AGENT);
  EXPECT_EQ(*ParseTokenRole("media"), v1::ROLE_MEDIA);
  EXPECT_FALSE(ParseTokenRole("Agent").ok());
  EXPECT_EQ(*ParseJobStateFilter(""), "");
  EXPECT_EQ(*ParseJobStateFilter("cancelled"), "cancelled");
  EXPECT_EQ(*ParseJobId("42"), 42u);
  EXPECT_FALSE(ParseJobId("0").ok());
  EXPECT_FALSE(ParseJobId("4x").ok());
  EXPECT_FALSE(ParseJobId("").ok());
}

}  // namespace
}  // namespace cairn::ctl
