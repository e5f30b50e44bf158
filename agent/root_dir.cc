#include "agent/root_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "common/strings.h"

namespace cairn {
namespace {

constexpr size_t kMaxLinkTarget = 4096;

// Splits a path into its non-empty components.
std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& parts) {
  if (parts.empty()) return "/";
  std::string out;
  for (const auto& p : parts) {
    out.push_back('/');
    out.append(p);
  }
  return out;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string_view Basename(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view Dirname(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

StatusOr<RootDir> RootDir::Open(std::string root) {
  if (root.empty()) return absl::InvalidArgumentError("empty root directory");
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "cannot open root directory", root);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("root ", root, " is not a directory"));
  }
  while (!root.empty() && root.back() == '/') root.pop_back();
  return RootDir(std::move(root));
}

std::string RootDir::HostPath(std::string_view resolved) const {
  if (root_.empty()) return std::string(resolved);
  return StrCat(root_, resolved == "/" ? std::string_view() : resolved);
}

StatusOr<std::string> RootDir::Resolve(std::string_view path,
                                       Missing missing) const {
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(
        StrCat("path '", path, "' is not absolute"));
  }
  std::vector<std::string> done;
  std::deque<std::string> todo;
  for (auto& c : Components(path)) todo.push_back(std::move(c));
  int links = 0;
  bool missing_tail = false;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (done.empty()) {
        return absl::InvalidArgumentError(StrCat(
            "path ", path, " escapes the root ", root_.empty() ? "/" : root_,
            " (a symlink or '..' climbs above it)"));
      }
      done.pop_back();
      continue;
    }
    done.push_back(std::move(c));
    if (missing_tail) continue;  // textual from here on
    std::string host = HostPath(Join(done));
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        if (missing == Missing::kError) {
          return absl::NotFoundError(
              StrCat(Join(done), " does not exist",
                     Join(done) == path ? std::string()
                                        : StrCat(" (resolving ", path, ")")));
        }
        missing_tail = true;
        continue;
      }
      return ErrnoToStatus(errno, "lstat", Join(done));
    }
    if (!S_ISLNK(st.st_mode)) {
      if (!todo.empty() && !S_ISDIR(st.st_mode)) {
        if (missing == Missing::kError) {
          return absl::NotFoundError(
              StrCat(Join(done), " is not a directory (resolving ", path, ")"));
        }
        missing_tail = true;
      }
      continue;
    }
    if (++links > kMaxSymlinks) {
      return absl::InvalidArgumentError(StrCat(
          "symlink loop: more than ", kMaxSymlinks,
          " symlinks while resolving ", path, " (last at ", Join(done), ")"));
    }
    char buf[kMaxLinkTarget + 1];
    ssize_t n = ::readlink(host.c_str(), buf, sizeof(buf));
    if (n < 0) return ErrnoToStatus(errno, "readlink", Join(done));
    if (static_cast<size_t>(n) > kMaxLinkTarget || n == 0) {
      return absl::InvalidArgumentError(
          StrCat("symlink ", Join(done), " has an empty or oversized target"));
    }
    std::string_view target(buf, static_cast<size_t>(n));
    done.pop_back();
    if (target.front() == '/') done.clear();  // chroot semantics
    std::vector<std::string> tc = Components(target);
    for (auto it = tc.rbegin(); it != tc.rend(); ++it) todo.push_front(*it);
  }
  return Join(done);
}

StatusOr<RootDir::Kind> RootDir::KindOf(std::string_view path) const {
  auto resolved = Resolve(path);
  if (absl::IsNotFound(resolved.status())) return Kind::kMissing;
  if (!resolved.ok()) return resolved.status();
  struct stat st;
  std::string host = HostPath(*resolved);
  if (::lstat(host.c_str(), &st) != 0) {
    if (errno == ENOENT) return Kind::kMissing;
    return ErrnoToStatus(errno, "lstat", *resolved);
  }
  if (S_ISREG(st.st_mode)) return Kind::kRegular;
  if (S_ISDIR(st.st_mode)) return Kind::kDirectory;
  return Kind::kOther;
}

StatusOr<std::string> RootDir::ReadFile(std::string_view path,
                                        size_t max_bytes) const {
  CAIRN_ASSIGN_OR_RETURN(std::string resolved, Resolve(path));
  std::string host = HostPath(resolved);
  Fd fd(::open(host.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoToStatus(errno, "open", resolved);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return ErrnoToStatus(errno, "stat", resolved);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat(resolved, " is not a regular file"));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL || errno == ENODEV || errno == EIO ||
          errno == ENXIO || errno == EOPNOTSUPP || errno == EAGAIN) {
        // sysfs answers a read of an attribute that has no value right now
        // (carrier of a down link, speed of a virtual NIC) with these.
        return absl::UnavailableError(StrCat("read ", resolved, ": ",
                                             std::strerror(errno),
                                             " (no value available)"));
      }
      return ErrnoToStatus(errno, "read", resolved);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return absl::ResourceExhaustedError(
          StrCat(resolved, " is larger than the ", max_bytes,
                 "-byte limit for this file"));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

StatusOr<std::optional<std::string>> RootDir::ReadOptional(
    std::string_view path, size_t max_bytes) const {
  auto r = ReadFile(path, max_bytes);
  if (absl::IsNotFound(r.status())) return std::optional<std::string>();
  if (!r.ok()) return r.status();
  return std::optional<std::string>(std::move(*r));
}

StatusOr<std::vector<std::string>> RootDir::List(std::string_view path) const {
  CAIRN_ASSIGN_OR_RETURN(std::string resolved, Resolve(path));
  std::string host = HostPath(resolved);
  int fd =
      ::open(host.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open directory", resolved);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "opendir", resolved);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (names.size() >= kMaxDirEntries) {
      ::closedir(dir);
      return absl::ResourceExhaustedError(
          StrCat(resolved, " has more than ", kMaxDirEntries, " entries"));
    }
    names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoToStatus(err, "readdir", resolved);
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::optional<std::string>> RootDir::ReadLink(
    std::string_view path) const {
  auto parent = Resolve(Dirname(path));
  if (absl::IsNotFound(parent.status())) return std::optional<std::string>();
  if (!parent.ok()) return parent.status();
  std::string machine =
      StrCat(*parent == "/" ? std::string() : *parent, "/", Basename(path));
  std::string host = HostPath(machine);
  struct stat st;
  if (::lstat(host.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return std::optional<std::string>();
    return ErrnoToStatus(errno, "lstat", machine);
  }
  if (!S_ISLNK(st.st_mode)) return std::optional<std::string>();
  char buf[kMaxLinkTarget + 1];
  ssize_t n = ::readlink(host.c_str(), buf, sizeof(buf));
  if (n < 0) return ErrnoToStatus(errno, "readlink", machine);
  if (static_cast<size_t>(n) > kMaxLinkTarget) {
    return absl::InvalidArgumentError(
        StrCat("symlink ", machine, " has an oversized target"));
  }
  return std::optional<std::string>(std::string(buf, static_cast<size_t>(n)));
}

}  // namespace cairn
