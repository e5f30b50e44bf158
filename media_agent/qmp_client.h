// QmpClient: a small client of the QEMU Machine Protocol (QMP) - JSON
// objects over a Unix stream socket, one per line - for the QEMU processes
// Cairn starts itself (instant boot, media_agent/instant_boot.h).
//
// Connect() opens the socket (retrying while QEMU has not created it or does
// not listen yet), reads the greeting ({"QMP": {"version": ...}}) and
// negotiates capabilities (qmp_capabilities), after which commands may be
// executed. Each Execute() sends {"execute", "arguments", "id"} and reads
// until the reply with that id: its "return" value, or its "error" as a
// Status (QmpErrorToStatus). Asynchronous events ({"event", "data",
// "timestamp"}) read meanwhile are queued, in arrival order, for
// WaitForEvent()/WaitForAnyEvent()/TakeEvents(); replies to an earlier
// command that timed out are discarded.
//
// Only the framing is hand-written; the messages are nlohmann::json.
//
// Errors: Unavailable once QEMU has closed the connection (it quit or
// died; events received before are still returned from the queue);
// DeadlineExceeded when a reply or an event does not arrive in time (the
// connection stays usable); Internal for a reply that is not JSON.
//
// Thread safety: thread-compatible, not thread-safe. One thread uses a
// QmpClient at a time (the owner of a VM drives it from its own loop);
// concurrent calls must be serialized by the caller.
#ifndef CAIRN_MEDIA_AGENT_QMP_CLIENT_H_
#define CAIRN_MEDIA_AGENT_QMP_CLIENT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"

namespace cairn {

class QmpClient {
 public:
  // Connects to QEMU's QMP socket at `socket_path`, retrying while the
  // socket is missing or refuses connections, until `timeout`; then reads
  // the greeting and enters command mode. DeadlineExceeded if QEMU never
  // answered in time; Unavailable if it closed the connection; Internal for
  // a greeting that is not QMP's.
  static StatusOr<std::unique_ptr<QmpClient>> Connect(
      const std::string& socket_path, absl::Duration timeout);

  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs `command` with `arguments` (an object; null or empty: none) and
  // returns its "return" value (often an empty object). A QMP error becomes
  // QmpErrorToStatus(command, error). Events that arrive meanwhile are
  // queued.
  StatusOr<nlohmann::json> Execute(
      std::string_view command,
      const nlohmann::json& arguments = nlohmann::json(),
      absl::Duration timeout = absl::Seconds(30));

  // The first queued or arriving event named `name` (the whole message:
  // "event", "data", "timestamp"), removed from the queue; other events
  // stay queued in order. DeadlineExceeded after `timeout` (0: only look at
  // what is queued or already readable); Unavailable if the connection
  // closes first.
  StatusOr<nlohmann::json> WaitForEvent(std::string_view name,
                                        absl::Duration timeout);
  // The same for the first event whose name is any of `names`.
  StatusOr<nlohmann::json> WaitForAnyEvent(
      const std::vector<std::string>& names, absl::Duration timeout);

  // Every queued event (after reading whatever is readable now, without
  // blocking), oldest first; the queue is emptied.
  std::vector<nlohmann::json> TakeEvents();

  // The greeting's "QMP" object (version, capabilities).
  const nlohmann::json& greeting() const { return greeting_; }
  // False once QEMU closed the connection (or a read failed).
  bool connected() const { return fd_ >= 0; }

 private:
  explicit QmpClient(int fd) : fd_(fd) {}
  // Reads one message, or fails at `deadline`. Events are returned like any
  // other message; the callers sort them.
  StatusOr<nlohmann::json> ReadMessage(absl::Time deadline);
  Status Send(const nlohmann::json& message);
  void Disconnect();

  int fd_;
  std::string buffer_;  // bytes read but not yet split into messages
  std::deque<nlohmann::json> events_;
  nlohmann::json greeting_;
  uint64_t next_id_ = 1;
};

// QMP's {"class": C, "desc": D} of `command` as a Status: CommandNotFound
// -> Unimplemented, DeviceNotFound -> NotFound, DeviceNotActive ->
// FailedPrecondition, GenericError (bad arguments, a busy node, ...) ->
// FailedPrecondition, anything else -> Internal. The message is
// "QMP COMMAND failed (CLASS): DESC".
Status QmpErrorToStatus(std::string_view command, const nlohmann::json& error);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_QMP_CLIENT_H_
