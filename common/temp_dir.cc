#include "common/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "common/strings.h"

namespace cairn {

StatusOr<std::unique_ptr<TempDir>> TempDir::Create(std::string_view prefix,
                                                   const std::string& parent) {
  std::string base = parent;
  if (base.empty()) {
    const char* t = ::getenv("TMPDIR");
    base = (t != nullptr && *t != '\0') ? t : "/tmp";
  }
  std::string tmpl = StrCat(base, "/", prefix, "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {  // mode 0700
    return ErrnoToStatus(errno, "mkdtemp", tmpl);
  }
  return std::unique_ptr<TempDir>(new TempDir(buf.data()));
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace cairn
