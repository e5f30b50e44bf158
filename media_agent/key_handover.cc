#include "media_agent/key_handover.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/coding.h"
#include "common/data_key.h"
#include "common/strings.h"

namespace cairn {
namespace {

// Far more than a key file needs; bounds what a hostile fd can make us read.
constexpr size_t kMaxKeyText = 1024;

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Reads `fd` to end of file into `*out` (at most kMaxKeyText bytes).
Status ReadAllBounded(int fd, std::string_view origin, std::string* out) {
  out->assign(kMaxKeyText + 1, '\0');
  size_t used = 0;
  while (used <= kMaxKeyText) {
    ssize_t n = ::read(fd, out->data() + used, out->size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      WipeSecret(out);
      return ErrnoToStatus(err, "read key", origin);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > kMaxKeyText) {
    WipeSecret(out);
    return absl::InvalidArgumentError(
        StrCat(origin, ": more than ", kMaxKeyText,
               " bytes; expected a key file (64 hex digits)"));
  }
  OPENSSL_cleanse(out->data() + used, out->size() - used);
  out->resize(used);
  return absl::OkStatus();
}

}  // namespace

void WipeSecret(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

StatusOr<std::string> ParseKeyText(std::string_view text,
                                   std::string_view origin) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  std::string raw;
  if (text.size() != 2 * DataKey::kSize || !HexDecode(text, &raw)) {
    WipeSecret(&raw);
    return absl::InvalidArgumentError(
        StrCat(origin, " must hold a data key: 64 hex digits (a 32-byte key)"));
  }
  return raw;
}

StatusOr<std::string> ReadKeySecretFromFd(int fd) {
  std::string origin = StrCat("key descriptor ", fd);
  if (fd <= 2) {
    return absl::InvalidArgumentError(
        StrCat(origin, ": stdin, stdout and stderr cannot carry a key"));
  }
  if (::fcntl(fd, F_GETFD) < 0) {
    return absl::InvalidArgumentError(
        StrCat(origin,
               " is not open (the key must be passed as an inherited "
               "descriptor)"));
  }
  std::string text;
  Status read = ReadAllBounded(fd, origin, &text);
  ::close(fd);
  CAIRN_RETURN_IF_ERROR(read);
  auto secret = ParseKeyText(text, origin);
  WipeSecret(&text);
  return secret;
}

StatusOr<std::string> ReadKeySecretFromFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (fd < 0) {
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          StrCat("key file ", path, " is a symbolic link; name the file"));
    }
    return ErrnoToStatus(errno, "open key file", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "stat key file", path);
  }
  Status check = absl::OkStatus();
  if (!S_ISREG(st.st_mode)) {
    check = absl::FailedPreconditionError(
        StrCat("key file ", path, " is not a regular file"));
  } else if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    check = absl::FailedPreconditionError(
        StrCat("key file ", path, " is owned by uid ", st.st_uid,
               ", not by this user (uid ", ::geteuid(), ") or root"));
  } else if ((st.st_mode & 077) != 0) {
    check = absl::FailedPreconditionError(StrCat(
        "key file ", path, " is accessible by group or others; chmod 600 it"));
  }
  if (!check.ok()) {
    ::close(fd);
    return check;
  }
  std::string text;
  Status read = ReadAllBounded(fd, StrCat("key file ", path), &text);
  ::close(fd);
  CAIRN_RETURN_IF_ERROR(read);
  auto secret = ParseKeyText(text, StrCat("key file ", path));
  WipeSecret(&text);
  return secret;
}

StatusOr<int> MakeKeyPipe(std::string_view secret) {
  if (secret.size() != DataKey::kSize) {
    return absl::InvalidArgumentError(StrCat(
        "data key must be ", DataKey::kSize, " bytes, got ", secret.size()));
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return ErrnoToStatus(errno, "pipe", "key handover");
  }
  // Written in two parts so the hex text is never copied to a larger buffer
  // (which would leave an unwiped copy behind).
  std::string text = HexEncode(secret);
  Status status = absl::OkStatus();
  for (std::string_view part :
       {std::string_view(text), std::string_view("\n")}) {
    size_t done = 0;
    while (status.ok() && done < part.size()) {
      ssize_t n = ::write(fds[1], part.data() + done, part.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        status = ErrnoToStatus(errno, "write", "key handover pipe");
        break;
      }
      done += static_cast<size_t>(n);
    }
  }
  WipeSecret(&text);
  ::close(fds[1]);
  if (!status.ok()) {
    ::close(fds[0]);
    return status;
  }
  return fds[0];
}

}  // namespace cairn
