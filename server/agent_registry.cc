#include "server/agent_registry.h"

#include <chrono>

namespace cairn {

AgentRegistry::AgentRegistry(Clock clock) : clock_(std::move(clock)) {}

int64_t AgentRegistry::Now() const {
  if (clock_) return clock_();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t AgentRegistry::Attach(const std::string& client_id,
                               std::shared_ptr<AgentSession> session) {
  std::shared_ptr<AgentSession> replaced;
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_session_id_++;
    Entry& e = sessions_[client_id];
    replaced = std::move(e.session);
    e.session_id = id;
    e.session = std::move(session);
    last_seen_[client_id] = Now();
  }
  if (replaced) replaced->Close();
  return id;
}

bool AgentRegistry::Detach(const std::string& client_id, uint64_t session_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end() || it->second.session_id != session_id) {
    return false;
  }
  sessions_.erase(it);
  return true;
}

void AgentRegistry::Disconnect(const std::string& client_id) {
  std::shared_ptr<AgentSession> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return;
    session = std::move(it->second.session);
    sessions_.erase(it);
  }
  session->Close();
}

void AgentRegistry::CloseAll() {
  std::vector<std::shared_ptr<AgentSession>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [client, e] : sessions_) all.push_back(e.session);
  }
  for (auto& s : all) s->Close();
}

bool AgentRegistry::Send(const std::string& client_id, uint64_t session_id,
                         AgentCommand command) {
  std::shared_ptr<AgentSession> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return false;
    if (session_id != 0 && it->second.session_id != session_id) return false;
    session = it->second.session;
  }
  return session->Push(std::move(command));
}

std::optional<uint64_t> AgentRegistry::CurrentSession(
    const std::string& client_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.session_id;
}

void AgentRegistry::Touch(const std::string& client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  last_seen_[client_id] = Now();
}

int64_t AgentRegistry::LastSeen(const std::string& client_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = last_seen_.find(client_id);
  return it == last_seen_.end() ? 0 : it->second;
}

std::vector<std::string> AgentRegistry::ConnectedClients() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [client, e] : sessions_) out.push_back(client);
  return out;
}

}  // namespace cairn
