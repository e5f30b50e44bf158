#include "agent/agent_config.h"

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/env.h"
#include "common/strings.h"
#include "common/tls.h"

namespace cairn {
namespace {

// A JSON string is a valid YAML double-quoted scalar.
std::string Quote(const std::string& s) { return nlohmann::json(s).dump(); }

// A YAML flow sequence of double-quoted scalars.
std::string QuoteList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ", ";
    out += Quote(v[i]);
  }
  return out + "]";
}

StatusOr<std::chrono::seconds> GetSeconds(ConfigReader* config,
                                          std::string_view key,
                                          std::chrono::seconds fallback) {
  CAIRN_ASSIGN_OR_RETURN(int64_t v, config->GetInt(key, fallback.count()));
  if (v < 1 || v > 3600) {
    return config->ErrorAt(key, "must be from 1 to 3600 seconds");
  }
  return std::chrono::seconds(v);
}

}  // namespace

std::string EncodeAgentConfig(const AgentConfig& c) {
  return StrCat(
      "# cairn-agent state (written by `cairn-agent enroll`)\n",
      "server: ", Quote(c.server), "\n", "identity: ", Quote(c.identity), "\n",
      "hostname: ", Quote(c.hostname), "\n",
      "heartbeat_seconds: ", c.heartbeat_interval.count(), "\n",
      "reconnect_max_seconds: ", c.reconnect_max_delay.count(), "\n",
      "progress_seconds: ", c.progress_interval.count(), "\n",
      "threads: ", c.threads, "\n", "profile_root: ", Quote(c.profile_root),
      "\n",
      // Absent when empty, so an operator adds it by hand.
      c.reboot_command.empty()
          ? std::string()
          : StrCat("reboot_command: ", QuoteList(c.reboot_command), "\n"));
}

StatusOr<AgentConfig> ParseAgentConfig(std::string_view text,
                                       std::string_view name) {
  CAIRN_ASSIGN_OR_RETURN(ConfigReader config,
                         ConfigReader::LoadString(text, name));
  AgentConfig c;
  CAIRN_ASSIGN_OR_RETURN(c.server, config.GetString("server", ""));
  CAIRN_ASSIGN_OR_RETURN(c.identity, config.GetString("identity", ""));
  CAIRN_ASSIGN_OR_RETURN(c.hostname, config.GetString("hostname", ""));
  CAIRN_ASSIGN_OR_RETURN(
      c.heartbeat_interval,
      GetSeconds(&config, "heartbeat_seconds", c.heartbeat_interval));
  CAIRN_ASSIGN_OR_RETURN(
      c.reconnect_max_delay,
      GetSeconds(&config, "reconnect_max_seconds", c.reconnect_max_delay));
  CAIRN_ASSIGN_OR_RETURN(
      c.progress_interval,
      GetSeconds(&config, "progress_seconds", c.progress_interval));
  CAIRN_ASSIGN_OR_RETURN(int64_t threads, config.GetInt("threads", 0));
  if (threads < 0 || threads > 1024) {
    return config.ErrorAt("threads", "must be from 0 to 1024");
  }
  c.threads = static_cast<int>(threads);
  CAIRN_ASSIGN_OR_RETURN(c.profile_root,
                         config.GetString("profile_root", c.profile_root));
  CAIRN_ASSIGN_OR_RETURN(c.reboot_command,
                         config.GetStringList("reboot_command"));
  if (!c.reboot_command.empty() &&
      (c.reboot_command[0].empty() || c.reboot_command[0][0] != '/')) {
    return config.ErrorAt("reboot_command",
                          "the program (first element) must be an absolute "
                          "path, e.g. [\"/sbin/reboot\"]");
  }
  CAIRN_RETURN_IF_ERROR(config.Finish());
  if (c.server.empty()) {
    return absl::InvalidArgumentError(
        StrCat(name, ": server: required (host:port of cairn-server)"));
  }
  if (c.identity.empty()) {
    return absl::InvalidArgumentError(
        StrCat(name, ": identity: required (the enrolled client id)"));
  }
  if (c.hostname.empty()) c.hostname = c.identity;
  return c;
}

StatusOr<AgentConfig> LoadAgentConfig(const std::string& state_dir) {
  const std::string path = JoinPath(state_dir, kAgentConfigFile);
  std::string text;
  Status s = Env::Default()->ReadFileToString(path, &text);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(
        StrCat(path,
               " does not exist: enroll this machine first "
               "(cairn-agent enroll --state-dir ",
               state_dir, " ...)"));
  }
  CAIRN_RETURN_IF_ERROR(s);
  return ParseAgentConfig(text, path);
}

Status WriteAgentConfig(const std::string& state_dir,
                        const AgentConfig& config) {
  return WritePrivateFileAtomically(JoinPath(state_dir, kAgentConfigFile),
                                    EncodeAgentConfig(config));
}

}  // namespace cairn
