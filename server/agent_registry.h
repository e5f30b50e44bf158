// AgentRegistry: the agents connected to this storage manager right now -
// one AgentSession per client, a new one replacing (and closing) the old -
// and when each was last heard from.
//
// Each attached session gets a session id, unique for the registry's
// lifetime, so a stale stream that ends after its replacement connected
// cannot detach the replacement.
//
// Thread safety: thread-safe. The registry never calls back into its caller;
// it calls AgentSession::Push/Close, which do not block.
#ifndef CAIRN_SERVER_AGENT_REGISTRY_H_
#define CAIRN_SERVER_AGENT_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/agent_session.h"

namespace cairn {

class AgentRegistry {
 public:
  using Clock = std::function<int64_t()>;  // microseconds since the epoch
  explicit AgentRegistry(Clock clock = nullptr);

  // Makes `session` the client's current session and returns its id. A
  // previous session of the same client is closed (AgentSession::Close).
  uint64_t Attach(const std::string& client_id,
                  std::shared_ptr<AgentSession> session);
  // Removes the session `session_id` if it is still the client's current one;
  // returns whether it was.
  bool Detach(const std::string& client_id, uint64_t session_id);
  // Closes and removes the client's current session, if any (revocation).
  void Disconnect(const std::string& client_id);
  // Closes every session (shutdown). Sessions stay registered until their
  // streams detach.
  void CloseAll();

  // Pushes `command` to the client's session `session_id` (0: whichever is
  // current). False if there is no such session or it has ended.
  bool Send(const std::string& client_id, uint64_t session_id,
            AgentCommand command);

  // The client's current session id, if connected.
  std::optional<uint64_t> CurrentSession(const std::string& client_id) const;
  bool IsConnected(const std::string& client_id) const {
    return CurrentSession(client_id).has_value();
  }
  // Records that the client was heard from now.
  void Touch(const std::string& client_id);
  // When the client was last heard from by this process (0: never).
  int64_t LastSeen(const std::string& client_id) const;
  // Ids of the connected clients, sorted.
  std::vector<std::string> ConnectedClients() const;

 private:
  struct Entry {
    uint64_t session_id = 0;
    std::shared_ptr<AgentSession> session;
  };
  int64_t Now() const;

  const Clock clock_;
  mutable std::mutex mu_;
  uint64_t next_session_id_ = 1;              // guarded by mu_
  std::map<std::string, Entry> sessions_;     // guarded by mu_
  std::map<std::string, int64_t> last_seen_;  // guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_SERVER_AGENT_REGISTRY_H_
