#include "media_agent/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "common/strings.h"

namespace cairn {
namespace {

using nlohmann::json;

// Milliseconds from now until `deadline`, at least 0.
int MillisUntil(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(left) + 1;
  return static_cast<int>(std::min<int64_t>(ms, 60000));
}

// A message short enough for an error text.
std::string Excerpt(const std::string& text) {
  return text.size() <= 200 ? text : StrCat(text.substr(0, 200), "...");
}

}  // namespace

Status QmpErrorToStatus(std::string_view command, const json& error) {
  std::string cls = "unknown";
  std::string desc = error.dump();
  if (error.is_object()) {
    if (error.contains("class") && error["class"].is_string()) {
      cls = error["class"].get<std::string>();
    }
    if (error.contains("desc") && error["desc"].is_string()) {
      desc = error["desc"].get<std::string>();
    }
  }
  std::string msg = StrCat("QMP ", command, " failed (", cls, "): ", desc);
  if (cls == "CommandNotFound") return absl::UnimplementedError(msg);
  if (cls == "DeviceNotFound") return absl::NotFoundError(msg);
  if (cls == "DeviceNotActive" || cls == "GenericError") {
    return absl::FailedPreconditionError(msg);
  }
  return absl::InternalError(msg);
}

StatusOr<std::unique_ptr<QmpClient>> QmpClient::Connect(
    const std::string& socket_path, absl::Duration timeout) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        StrCat("QMP socket path '", socket_path, "' is empty or longer than ",
               sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  const absl::Time deadline = absl::Now() + timeout;
  int last_errno = 0;
  while (true) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, "socket", socket_path);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) ==
        0) {
      std::unique_ptr<QmpClient> client(new QmpClient(fd));
      // Connected: give the greeting and the negotiation at least 10 s, even
      // when the connection came just before `deadline`.
      const absl::Time reply_deadline =
          std::max(deadline, absl::Now() + absl::Seconds(10));
      CAIRN_ASSIGN_OR_RETURN(json greeting,
                             client->ReadMessage(reply_deadline));
      if (!greeting.is_object() || !greeting.contains("QMP") ||
          !greeting["QMP"].is_object()) {
        return absl::InternalError(StrCat("not a QMP greeting on ", socket_path,
                                          ": ", Excerpt(greeting.dump())));
      }
      client->greeting_ = greeting["QMP"];
      CAIRN_RETURN_IF_ERROR(client
                                ->Execute("qmp_capabilities", json(),
                                          std::max(reply_deadline - absl::Now(),
                                                   absl::Seconds(1)))
                                .status());
      return client;
    }
    last_errno = errno;
    ::close(fd);
    // QEMU has not created the socket yet, or does not accept yet.
    if (last_errno != ENOENT && last_errno != ECONNREFUSED &&
        last_errno != EAGAIN && last_errno != EINTR) {
      return ErrnoToStatus(last_errno, "connect to QMP socket", socket_path);
    }
    if (absl::Now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(StrCat(
      "QMP socket ", socket_path, " did not accept a connection within ",
      absl::FormatDuration(timeout), " (", std::strerror(last_errno), ")"));
}

QmpClient::~QmpClient() { Disconnect(); }

void QmpClient::Disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status QmpClient::Send(const json& message) {
  if (fd_ < 0) return absl::UnavailableError("QMP connection is closed");
  std::string text = message.dump();
  text += "\r\n";
  size_t sent = 0;
  while (sent < text.size()) {
    ssize_t n =
        ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      Disconnect();
      return absl::UnavailableError(
          StrCat("QMP connection lost while sending: ", std::strerror(e)));
    }
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

StatusOr<json> QmpClient::ReadMessage(absl::Time deadline) {
  while (true) {
    // A complete line in the buffer: one message (QMP ends them with CRLF).
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (message.is_discarded() || !message.is_object()) {
        return absl::InternalError(StrCat(
            "QMP sent a message that is not a JSON object: ", Excerpt(line)));
      }
      return message;
    }
    if (fd_ < 0) return absl::UnavailableError("QMP connection is closed");
    pollfd pfd = {fd_, POLLIN, 0};
    int rc = ::poll(&pfd, 1, MillisUntil(deadline));
    if (rc < 0) {
      if (errno == EINTR) {
        if (absl::Now() >= deadline) {
          return absl::DeadlineExceededError("no QMP message in time");
        }
        continue;
      }
      return ErrnoToStatus(errno, "poll", "QMP socket");
    }
    if (rc == 0) {
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError("no QMP message in time");
      }
      continue;
    }
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : 0;
      Disconnect();
      return absl::UnavailableError(
          e == 0 ? std::string("QEMU closed the QMP connection")
                 : StrCat("QMP connection lost: ", std::strerror(e)));
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    if (buffer_.size() > (64u << 20)) {
      Disconnect();
      return absl::InternalError("QMP message longer than 64 MiB");
    }
  }
}

StatusOr<json> QmpClient::Execute(std::string_view command,
                                  const json& arguments,
                                  absl::Duration timeout) {
  const uint64_t id = next_id_++;
  json request = {{"execute", std::string(command)}, {"id", id}};
  if (arguments.is_object() && !arguments.empty()) {
    request["arguments"] = arguments;
  }
  CAIRN_RETURN_IF_ERROR(Send(request));
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    StatusOr<json> message = ReadMessage(deadline);
    if (!message.ok()) {
      Status s = message.status();
      return Status(s.code(), StrCat("QMP ", command, ": ", s.message()));
    }
    if (message->contains("event")) {
      events_.push_back(*std::move(message));
      continue;
    }
    // A reply to an earlier command that timed out: not ours.
    if (!message->contains("id") || (*message)["id"] != id) continue;
    if (message->contains("error")) {
      return QmpErrorToStatus(command, (*message)["error"]);
    }
    if (message->contains("return")) return (*message)["return"];
    return absl::InternalError(
        StrCat("QMP ", command,
               ": reply without return or error: ", Excerpt(message->dump())));
  }
}

StatusOr<json> QmpClient::WaitForEvent(std::string_view name,
                                       absl::Duration timeout) {
  return WaitForAnyEvent({std::string(name)}, timeout);
}

StatusOr<json> QmpClient::WaitForAnyEvent(const std::vector<std::string>& names,
                                          absl::Duration timeout) {
  auto matches = [&](const json& event) {
    if (!event["event"].is_string()) return false;
    const std::string& got = event["event"].get_ref<const std::string&>();
    return std::find(names.begin(), names.end(), got) != names.end();
  };
  for (auto it = events_.begin(); it != events_.end(); ++it) {
    if (matches(*it)) {
      json event = std::move(*it);
      events_.erase(it);
      return event;
    }
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    StatusOr<json> message = ReadMessage(deadline);
    if (!message.ok()) {
      Status s = message.status();
      std::string wanted;
      for (const auto& n : names) wanted += (wanted.empty() ? "" : "|") + n;
      return Status(s.code(), StrCat("waiting for QMP event ", wanted, ": ",
                                     s.message()));
    }
    if (!message->contains("event")) continue;  // a stale reply
    if (matches(*message)) return *std::move(message);
    events_.push_back(*std::move(message));
  }
}

std::vector<json> QmpClient::TakeEvents() {
  while (fd_ >= 0) {
    StatusOr<json> message = ReadMessage(absl::Now());
    if (!message.ok()) break;
    if (message->contains("event")) events_.push_back(*std::move(message));
  }
  std::vector<json> out(std::make_move_iterator(events_.begin()),
                        std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

}  // namespace cairn
