// AgentConfig: the agent's settings in its state directory, agent.yaml,
// written by `cairn-agent enroll` next to the TLS files (ca.pem, cert.pem,
// key.pem; common/tls.h) and read by `cairn-agent run`.
//
//   server: "cairn.example.com:7443"   # the storage manager (required)
//   identity: "pc-17"                   # client id the CA certified (required)
//   hostname: "pc-17"                   # reported in Hello (default: identity)
//   heartbeat_seconds: 10               # 1..3600
//   reconnect_max_seconds: 60           # backoff ceiling, 1..3600
//   progress_seconds: 2                 # progress reports, 1..3600
//   threads: 0                          # pipeline workers; 0: one per core
//   profile_root: "/"                   # where the hardware profile is read
//                                       # (/sys, /proc, /etc, /boot, /lib);
//                                       # "" sends no profile
//   reboot_command: ["/sbin/reboot"]    # argv run after a restore started
//                                       # with --reboot succeeded; absolute
//                                       # program path; default [] = this
//                                       # agent refuses --reboot
//
// Unknown keys are errors (typos do not pass silently).
//
// Thread safety: pure functions.
#ifndef CAIRN_AGENT_AGENT_CONFIG_H_
#define CAIRN_AGENT_AGENT_CONFIG_H_

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cairn {

inline constexpr char kAgentConfigFile[] = "agent.yaml";

struct AgentConfig {
  std::string server;
  std::string identity;
  std::string hostname;
  std::chrono::seconds heartbeat_interval{10};
  std::chrono::seconds reconnect_max_delay{60};
  std::chrono::seconds progress_interval{2};
  int threads = 0;
  std::string profile_root = "/";
  // Empty: rebooting after a restore is not allowed.
  std::vector<std::string> reboot_command;
};

// The YAML text for `config` (only the keys above).
std::string EncodeAgentConfig(const AgentConfig& config);
// Parses agent.yaml text; `name` names the file in errors. InvalidArgument
// naming key and line for a bad value, a missing required key or an unknown
// key.
StatusOr<AgentConfig> ParseAgentConfig(std::string_view text,
                                       std::string_view name);

// DIR/agent.yaml. NotFound (saying to run `cairn-agent enroll`) if absent.
StatusOr<AgentConfig> LoadAgentConfig(const std::string& state_dir);
// Writes DIR/agent.yaml atomically (mode 0600).
Status WriteAgentConfig(const std::string& state_dir,
                        const AgentConfig& config);

}  // namespace cairn

#endif  // CAIRN_AGENT_AGENT_CONFIG_H_
