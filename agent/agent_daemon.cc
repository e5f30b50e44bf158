#include "agent/agent_daemon.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "agent/agent_config.h"
#include "agent/control_client.h"
#include "agent/grpc_media_connector.h"
#include "agent/job_runner.h"
#include "agent/profile_collector.h"
#include "common/hardware_profile.h"
#include "common/tls.h"

namespace cairn {

Status RunAgentDaemon(const AgentDaemonOptions& options) {
  // Block the stop signals before any thread starts (gRPC starts its own
  // threads when credentials are first made), so that they all inherit the
  // mask and only the signal thread below receives SIGTERM/SIGINT.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  CAIRN_ASSIGN_OR_RETURN(AgentConfig config,
                         LoadAgentConfig(options.state_dir));
  if (options.heartbeat_interval) {
    config.heartbeat_interval = *options.heartbeat_interval;
  }
  if (options.reconnect_max_delay) {
    config.reconnect_max_delay = *options.reconnect_max_delay;
  }
  if (options.threads) config.threads = *options.threads;
  CAIRN_ASSIGN_OR_RETURN(TlsFiles tls, ReadTlsFiles(options.state_dir));
  CAIRN_ASSIGN_OR_RETURN(auto creds, MakeChannelCredentials(tls));

  GrpcMediaConnector connector(tls, config.server);
  ControlClientOptions client_options;
  client_options.hostname = config.hostname;
  client_options.heartbeat_interval = config.heartbeat_interval;
  client_options.backoff.max_delay = config.reconnect_max_delay;
  if (!config.profile_root.empty()) {
    client_options.profile_source =
        [root = config.profile_root]() -> StatusOr<v1::ProfileReport> {
      CollectOptions collect;
      collect.root = root;
      CAIRN_ASSIGN_OR_RETURN(v1::HardwareProfile profile,
                             CollectHardwareProfile(collect));
      v1::ProfileReport report;
      uint64_t raw_size = 0;
      CAIRN_ASSIGN_OR_RETURN(*report.mutable_profile_zstd(),
                             CompressHardwareProfile(profile, &raw_size));
      report.set_raw_size(raw_size);
      return report;
    };
  }
  ControlClient client(MakeControlChannel(config.server, creds),
                       client_options);
  JobRunnerOptions runner_options;
  runner_options.source_name = config.identity;
  runner_options.threads = config.threads;
  runner_options.progress_interval = config.progress_interval;
  runner_options.reboot_command = config.reboot_command;
  JobRunner runner(&connector, &client, runner_options);

  spdlog::info("cairn-agent {} ({}) serving {}", config.identity,
               config.hostname, config.server);
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("signal {}: cancelling running jobs and closing the stream",
                 sig);
    // Refuse before cancelling: the stream stays up for the grace period,
    // and a command the server sends meanwhile must not start a job after
    // the cancel (it is answered "the agent is shutting down" instead).
    runner.StopAccepting();
    if (!runner.WaitIdle(options.job_grace)) {
      spdlog::warn(
          "a job did not stop within {} s",
          std::chrono::duration_cast<std::chrono::seconds>(options.job_grace)
              .count());
    }
    client.Shutdown();
  });
  client.Run(&runner);
  signal_thread.join();
  runner.Stop();
  spdlog::info("cairn-agent stopped");
  return absl::OkStatus();
}

}  // namespace cairn
