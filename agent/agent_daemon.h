// AgentDaemon: `cairn-agent run` - wires the enrolled identity in a state
// directory to a ControlClient (command stream), a JobRunner (jobs) and a
// GrpcMediaConnector (data path), and runs until SIGTERM or SIGINT.
//
// On SIGTERM/SIGINT: the daemon stops taking jobs (a command that arrives
// from then on is answered with a failed result), the running job is
// cancelled, the daemon waits up to `job_grace` for its result and sends it
// if the stream is up, closes the stream (opening no new one), and returns
// 0.
//
// Thread safety: RunAgentDaemon is called once per process (it owns the
// signal mask of the process).
#ifndef CAIRN_AGENT_AGENT_DAEMON_H_
#define CAIRN_AGENT_AGENT_DAEMON_H_

#include <chrono>
#include <optional>
#include <string>

#include "common/status.h"

namespace cairn {

struct AgentDaemonOptions {
  std::string state_dir;
  // Override agent.yaml when set.
  std::optional<std::chrono::seconds> heartbeat_interval;
  std::optional<std::chrono::seconds> reconnect_max_delay;
  std::optional<int> threads;
  std::chrono::milliseconds job_grace{std::chrono::seconds(30)};
};

// Returns when stopped by a signal (OK) or when the state directory cannot
// be used (NotFound: not enrolled; FailedPrecondition: key file permissions;
// InvalidArgument: a bad agent.yaml or TLS file).
Status RunAgentDaemon(const AgentDaemonOptions& options);

}  // namespace cairn

#endif  // CAIRN_AGENT_AGENT_DAEMON_H_
