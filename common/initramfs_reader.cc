#include "common/initramfs_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "common/module_index.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr size_t kNewcHeaderBytes = 110;

class File {
 public:
  File(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const { return size_; }

  // Reads exactly `n` bytes at `off`; false on a short read or error.
  bool ReadAt(uint64_t off, size_t n, char* out) const {
    size_t got = 0;
    while (got < n) {
      ssize_t r =
          ::pread(fd_, out + got, n - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
  uint64_t size_;
};

bool IsModulePath(std::string_view p) {
  for (std::string_view s : {".ko", ".ko.xz", ".ko.zst", ".ko.gz"}) {
    if (p.size() > s.size() && p.substr(p.size() - s.size()) == s) return true;
  }
  return false;
}

std::string StripDot(std::string_view p) {
  while (p.substr(0, 2) == "./") p.remove_prefix(2);
  if (p == ".") return "";
  return std::string(p);
}

bool ParseHex8(const char* p, uint32_t* out) {
  uint32_t v = 0;
  for (int i = 0; i < 8; ++i) {
    char c = p[i];
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  *out = v;
  return true;
}

uint64_t Align4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }

class Reader {
 public:
  Reader(const File& file, const std::string& display,
         const InitramfsLimits& limits, InitramfsListing* out)
      : file_(file), display_(display), limits_(limits), out_(out) {}

  Status Run() {
    uint64_t off = 0;
    while (off < file_.size()) {
      // Zero padding between archives is skipped, as the kernel does.
      char b;
      if (!file_.ReadAt(off, 1, &b)) return Truncated(off, "padding");
      if (b == 0) {
        ++off;
        continue;
      }
      if (out_->segments.size() >= limits_.max_segments) {
        return absl::ResourceExhaustedError(StrCat(display_, ": more than ",
                                                   limits_.max_segments,
                                                   " concatenated archives"));
      }
      char magic[6] = {};
      size_t have = std::min<uint64_t>(6, file_.size() - off);
      if (!file_.ReadAt(off, have, magic)) return Truncated(off, "magic");
      if (have >= 6 && (std::memcmp(magic, "070701", 6) == 0 ||
                        std::memcmp(magic, "070702", 6) == 0)) {
        out_->segments.push_back("cpio");
        CAIRN_ASSIGN_OR_RETURN(off, WalkNewc(off));
        continue;
      }
      if (!LooksCompressed(magic, have)) {
        return absl::DataLossError(
            StrCat(display_, ": segment ", out_->segments.size() + 1,
                   " at offset ", off,
                   " is neither a cpio archive nor a known compressed "
                   "stream (garbage or not an initramfs)"));
      }
      return ReadCompressed(off);
    }
    if (out_->segments.empty()) {
      return absl::DataLossError(StrCat(display_, ": empty initramfs"));
    }
    return absl::OkStatus();
  }

 private:
  Status Truncated(uint64_t off, std::string_view what) const {
    return absl::DataLossError(StrCat(display_, ": truncated at offset ", off,
                                      " (", what, ", segment ",
                                      out_->segments.size(), ")"));
  }

  static bool LooksCompressed(const char* m, size_t n) {
    auto u = [&](size_t i) { return static_cast<unsigned char>(m[i]); };
    if (n >= 2 && u(0) == 0x1f && (u(1) == 0x8b || u(1) == 0x9e)) return true;
    if (n >= 4 && u(0) == 0x28 && u(1) == 0xb5 && u(2) == 0x2f && u(3) == 0xfd)
      return true;  // zstd
    if (n >= 6 && std::memcmp(m,
                              "\xfd"
                              "7zXZ\0",
                              6) == 0)
      return true;
    if (n >= 4 && u(0) == 0x02 && u(1) == 0x21 && u(2) == 0x4c && u(3) == 0x18)
      return true;  // lz4 legacy
    if (n >= 3 && std::memcmp(m, "BZh", 3) == 0) return true;
    if (n >= 3 && u(0) == 0x5d && u(1) == 0 && u(2) == 0) return true;  // lzma
    return false;
  }

  Status AddMember(std::string_view raw) {
    if (raw.size() > limits_.max_path_bytes) {
      return absl::DataLossError(StrCat(display_, ": member name longer than ",
                                        limits_.max_path_bytes, " bytes"));
    }
    if (out_->members.size() >= limits_.max_members) {
      return absl::ResourceExhaustedError(
          StrCat(display_, ": more than ", limits_.max_members, " members"));
    }
    std::string p = StripDot(raw);
    if (p.empty()) return absl::OkStatus();
    if (IsModulePath(p)) out_->module_paths.push_back(p);
    out_->members.push_back(std::move(p));
    return absl::OkStatus();
  }

  // Walks one uncompressed newc archive at `off`; returns the offset after
  // its trailer record.
  StatusOr<uint64_t> WalkNewc(uint64_t off) {
    for (;;) {
      char h[kNewcHeaderBytes];
      if (off + kNewcHeaderBytes > file_.size() ||
          !file_.ReadAt(off, kNewcHeaderBytes, h)) {
        return Truncated(off, "cpio header");
      }
      if (std::memcmp(h, "070701", 6) != 0 &&
          std::memcmp(h, "070702", 6) != 0) {
        return absl::DataLossError(
            StrCat(display_, ": bad cpio header magic at offset ", off));
      }
      uint32_t fields[13];
      for (int i = 0; i < 13; ++i) {
        if (!ParseHex8(h + 6 + 8 * i, &fields[i])) {
          return absl::DataLossError(StrCat(display_,
                                            ": cpio header at offset ", off,
                                            " has a non-hex field"));
        }
      }
      uint32_t filesize = fields[6];
      uint32_t namesize = fields[11];
      if (namesize == 0 || namesize > limits_.max_path_bytes + 1) {
        return absl::DataLossError(StrCat(display_, ": cpio member at offset ",
                                          off, " has name size ", namesize));
      }
      uint64_t name_off = off + kNewcHeaderBytes;
      if (name_off + namesize > file_.size())
        return Truncated(off, "cpio name");
      std::string name(namesize, '\0');
      if (!file_.ReadAt(name_off, namesize, name.data())) {
        return Truncated(off, "cpio name");
      }
      if (name.back() != '\0') {
        return absl::DataLossError(StrCat(display_,
                                          ": cpio member name at offset ", off,
                                          " is not NUL-terminated"));
      }
      name.pop_back();
      uint64_t data_off = Align4(name_off + namesize);
      uint64_t next = Align4(data_off + filesize);
      if (data_off + filesize > file_.size())
        return Truncated(off, "cpio data");
      if (name == "TRAILER!!!") return std::min<uint64_t>(next, file_.size());
      CAIRN_RETURN_IF_ERROR(AddMember(name));
      off = next;
    }
  }

  struct Source {
    const File* file;
    uint64_t off;
    char buf[65536];
  };

  static la_ssize_t ReadCb(struct archive*, void* client, const void** buf) {
    auto* s = static_cast<Source*>(client);
    if (s->off >= s->file->size()) return 0;
    size_t n = std::min<uint64_t>(sizeof(s->buf), s->file->size() - s->off);
    ssize_t r;
    do {
      r = ::pread(s->file->fd(), s->buf, n, static_cast<off_t>(s->off));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    s->off += static_cast<uint64_t>(r);
    *buf = s->buf;
    return r;
  }

  Status ReadCompressed(uint64_t off) {
    auto src = std::make_unique<Source>();
    src->file = &file_;
    src->off = off;
    struct archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_cpio(a);
    auto fail = [&](std::string_view what) {
      std::string msg = StrCat(
          display_, ": segment ", out_->segments.size() + 1, " at offset ", off,
          ": ", what, ": ",
          archive_error_string(a) ? archive_error_string(a) : "unknown error");
      archive_read_free(a);
      return absl::DataLossError(msg);
    };
    if (archive_read_open(a, src.get(), nullptr, &Reader::ReadCb, nullptr) !=
        ARCHIVE_OK) {
      return fail("cannot open");
    }
    bool first = true;
    for (;;) {
      struct archive_entry* e;
      int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return fail("bad archive");
      if (first) {
        const char* f = archive_filter_name(a, 0);
        out_->segments.push_back(StrCat("cpio+", f ? f : "unknown"));
        first = false;
      }
      const char* name = archive_entry_pathname(e);
      if (name == nullptr) return fail("member without a name");
      Status s = AddMember(name);
      if (!s.ok()) {
        archive_read_free(a);
        return s;
      }
      if (archive_read_data_skip(a) != ARCHIVE_OK)
        return fail("bad member data");
    }
    if (first) return fail("no cpio members");
    archive_read_free(a);
    return absl::OkStatus();
  }

  const File& file_;
  const std::string& display_;
  const InitramfsLimits& limits_;
  InitramfsListing* out_;
};

}  // namespace

StatusOr<InitramfsListing> ReadInitramfs(const std::string& path,
                                         const std::string& display_path,
                                         const InitramfsLimits& limits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open", display_path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "stat", display_path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        StrCat(display_path, " is not a regular file"));
  }
  File file(fd, static_cast<uint64_t>(st.st_size));
  InitramfsListing out;
  out.size_bytes = file.size();
  Reader reader(file, display_path, limits, &out);
  CAIRN_RETURN_IF_ERROR(reader.Run());
  std::set<std::string> names;
  for (const auto& p : out.module_paths) names.insert(NormalizeModuleName(p));
  out.modules.assign(names.begin(), names.end());
  std::sort(out.module_paths.begin(), out.module_paths.end());
  return out;
}

}  // namespace cairn
