#include "cli/browse_commands.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <vector>

#include "cli/browse_client.h"
#include "cli/ctl_output.h"
#include "cli/job_watch.h"
#include "common/cli.h"
#include "common/paths.h"
#include "common/progress.h"
#include "common/strings.h"

namespace cairn::ctl {
namespace {

const char* TypeName(v1::FileEntry::Type t) {
  switch (t) {
    case v1::FileEntry::REGULAR:
      return "file";
    case v1::FileEntry::DIRECTORY:
      return "dir";
    case v1::FileEntry::SYMLINK:
      return "symlink";
    case v1::FileEntry::CHAR_DEVICE:
      return "chardev";
    case v1::FileEntry::BLOCK_DEVICE:
      return "blockdev";
    case v1::FileEntry::FIFO:
      return "fifo";
    case v1::FileEntry::SOCKET:
      return "socket";
    default:
      return "unknown";
  }
}

// "drwxr-xr-x"-style mode string.
std::string ModeString(const v1::FileEntry& e) {
  std::string s(10, '-');
  switch (e.type()) {
    case v1::FileEntry::DIRECTORY:
      s[0] = 'd';
      break;
    case v1::FileEntry::SYMLINK:
      s[0] = 'l';
      break;
    case v1::FileEntry::CHAR_DEVICE:
      s[0] = 'c';
      break;
    case v1::FileEntry::BLOCK_DEVICE:
      s[0] = 'b';
      break;
    case v1::FileEntry::FIFO:
      s[0] = 'p';
      break;
    case v1::FileEntry::SOCKET:
      s[0] = 's';
      break;
    default:
      break;
  }
  const uint32_t m = e.mode();
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (m & (0400u >> i)) s[1 + i] = rwx[i];
  }
  if (m & 04000) s[3] = (m & 0100) ? 's' : 'S';
  if (m & 02000) s[6] = (m & 0010) ? 's' : 'S';
  if (m & 01000) s[9] = (m & 0001) ? 't' : 'T';
  return s;
}

std::string TimeOf(int64_t ns) { return cli::FormatTimestamp(ns / 1000); }

// The last component of a normalized path ("/" for the root).
std::string BaseName(const std::string& path) {
  if (path == "/") return "/";
  return path.substr(path.rfind('/') + 1);
}

nlohmann::json EntryToJson(const v1::FileEntry& e) {
  nlohmann::json j = {{"path", e.path()},
                      {"type", TypeName(e.type())},
                      {"size", e.size()},
                      {"mode", StrCat("0",
                                      [&] {
                                        char buf[16];
                                        std::snprintf(buf, sizeof(buf), "%o",
                                                      e.mode());
                                        return std::string(buf);
                                      }())},
                      {"uid", e.uid()},
                      {"gid", e.gid()},
                      {"mtime", TimeOf(e.mtime_ns())}};
  if (e.type() == v1::FileEntry::SYMLINK) {
    j["symlink_target"] = e.symlink_target();
  }
  return j;
}

std::string FormatEntryLine(const v1::FileEntry& e, const std::string& name) {
  std::string line = StrCat(ModeString(e), " ", e.uid(), ":", e.gid(), " ");
  char size[32];
  std::snprintf(size, sizeof(size), "%12llu",
                static_cast<unsigned long long>(e.size()));
  line += size;
  line += " " + TimeOf(e.mtime_ns()) + " " + name;
  if (e.type() == v1::FileEntry::SYMLINK) {
    line += " -> " + e.symlink_target();
  }
  return line;
}

int BrowseLs(BrowseClient* client, const CtlInvocation& inv) {
  auto target = ParseBrowseTarget(inv.id);
  if (!target.ok()) return ReportCtlError(target.status(), inv.json);
  auto resp = client->List(target->backup_id, target->partition, target->path);
  if (!resp.ok()) return ReportCtlError(resp.status(), inv.json);
  const auto& fs = resp->filesystem();
  if (inv.json) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : resp->entries()) entries.push_back(EntryToJson(e));
    cli::PrintJson({{"backup_id", target->backup_id},
                    {"partition", fs.partition()},
                    {"fs_type", fs.fs_type()},
                    {"directory", EntryToJson(resp->directory())},
                    {"from_catalogue", resp->from_catalogue()},
                    {"entries", entries}});
    return kExitOk;
  }
  std::cout << target->backup_id << " partition " << fs.partition() << " ("
            << fs.fs_type() << (fs.label().empty() ? "" : " " + fs.label())
            << ") " << resp->directory().path() << ": " << resp->entries_size()
            << " entries\n";
  for (const auto& e : resp->entries()) {
    std::cout << FormatEntryLine(e, BaseName(e.path())) << "\n";
  }
  return kExitOk;
}

int BrowseFind(BrowseClient* client, const CtlInvocation& inv) {
  auto resp = client->Find(inv.backup, inv.pattern, inv.partition, inv.limit);
  if (!resp.ok()) return ReportCtlError(resp.status(), inv.json);
  if (inv.json) {
    nlohmann::json matches = nlohmann::json::array();
    for (const auto& m : resp->matches()) {
      nlohmann::json j = EntryToJson(m.entry());
      j["partition"] = m.partition();
      matches.push_back(j);
    }
    cli::PrintJson({{"backup_id", inv.backup},
                    {"pattern", inv.pattern},
                    {"truncated", resp->truncated()},
                    {"matches", matches}});
    return kExitOk;
  }
  for (const auto& m : resp->matches()) {
    std::cout << FormatEntryLine(m.entry(),
                                 StrCat(inv.backup, ":", m.partition(), ":",
                                        m.entry().path()))
              << "\n";
  }
  std::cerr << resp->matches_size() << " match(es)"
            << (resp->truncated() ? " (more not shown: raise --limit)" : "")
            << "\n";
  return resp->matches_size() == 0 ? kExitNotFound : kExitOk;
}

int BrowseSearch(AdminClient* admin, BrowseClient* client,
                 const CtlInvocation& inv) {
  auto backups = admin->ListBackups(inv.client);
  if (!backups.ok()) return ReportCtlError(backups.status(), inv.json);
  std::vector<std::string> ids;
  for (const auto& b : backups->backups()) {
    ids.push_back(b.backup_id());
  }
  if (ids.empty()) {
    return ReportCtlError(
        absl::NotFoundError(StrCat("client '", inv.client,
                                   "' has no available backup to search")),
        inv.json);
  }
  Status opened = client->Open(ids);
  if (!opened.ok()) return ReportCtlError(opened, inv.json);
  nlohmann::json rows = nlohmann::json::array();
  size_t total = 0;
  std::vector<std::string> failures;
  for (const std::string& id : ids) {
    auto resp = client->Find(id, inv.pattern, std::nullopt, inv.limit);
    if (!resp.ok()) {
      failures.push_back(StrCat(id, ": ", ToStd(resp.status().message())));
      continue;
    }
    for (const auto& m : resp->matches()) {
      ++total;
      if (inv.json) {
        nlohmann::json j = EntryToJson(m.entry());
        j["backup_id"] = id;
        j["partition"] = m.partition();
        rows.push_back(j);
      } else {
        std::cout << FormatEntryLine(m.entry(), StrCat(id, ":", m.partition(),
                                                       ":", m.entry().path()))
                  << "\n";
      }
    }
  }
  if (inv.json) {
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& f : failures) errors.push_back(f);
    cli::PrintJson({{"client_id", inv.client},
                    {"pattern", inv.pattern},
                    {"backups_searched", ids.size()},
                    {"matches", rows},
                    {"errors", errors}});
  } else {
    for (const auto& f : failures) std::cerr << "cannot search " << f << "\n";
    std::cerr << total << " match(es) in " << ids.size() << " backup(s)\n";
  }
  if (!failures.empty()) return kExitOther;
  return total == 0 ? kExitNotFound : kExitOk;
}

// Writes one file of the backup to `dest` atomically (see the header).
Status GetFile(BrowseClient* client, const BrowseTarget& t,
               const std::string& dest, bool json) {
  namespace fs = std::filesystem;
  const fs::path final_path(dest);
  const fs::path dir =
      final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
  std::string tmp =
      (dir / (".cairn-get." + final_path.filename().string() + ".XXXXXX"))
          .string();
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno,
                               StrCat("creating a file in ", dir.string()));
  }
  v1::FileEntry entry;
  std::unique_ptr<ProgressCounter> counter;
  std::unique_ptr<ProgressPrinter> printer;
  Status s = client->Read(
      t.backup_id, t.partition, t.path,
      [&](const v1::FileEntry& e) {
        entry = e;
        counter = std::make_unique<ProgressCounter>(e.size());
        if (!json)
          printer = std::make_unique<ProgressPrinter>(StrCat("get ", t.path));
        return Status();
      },
      [&](std::string_view data) -> Status {
        while (!data.empty()) {
          ssize_t n = ::write(fd, data.data(), data.size());
          if (n < 0) {
            if (errno == EINTR) continue;
            return absl::ErrnoToStatus(errno, StrCat("writing ", tmp));
          }
          data.remove_prefix(static_cast<size_t>(n));
          counter->Add(static_cast<uint64_t>(n));
        }
        if (printer) printer->Update(counter->Snapshot());
        return Status();
      });
  if (s.ok()) {
    if (::fchmod(fd, entry.mode() & 07777) != 0 && s.ok()) {
      s = absl::ErrnoToStatus(errno, StrCat("setting the mode of ", tmp));
    }
    if (s.ok() && ::geteuid() == 0 &&
        ::fchown(fd, entry.uid(), entry.gid()) != 0) {
      s = absl::ErrnoToStatus(errno, StrCat("setting the owner of ", tmp));
    }
    // fchown clears setuid/setgid bits: set the mode again.
    if (s.ok() && ::geteuid() == 0 && ::fchmod(fd, entry.mode() & 07777) != 0) {
      s = absl::ErrnoToStatus(errno, StrCat("setting the mode of ", tmp));
    }
    struct timespec times[2];
    times[0].tv_sec = entry.atime_ns() / 1'000'000'000;
    times[0].tv_nsec = entry.atime_ns() % 1'000'000'000;
    times[1].tv_sec = entry.mtime_ns() / 1'000'000'000;
    times[1].tv_nsec = entry.mtime_ns() % 1'000'000'000;
    if (s.ok() && ::futimens(fd, times) != 0) {
      s = absl::ErrnoToStatus(errno, StrCat("setting the times of ", tmp));
    }
    if (s.ok() && ::fsync(fd) != 0) {
      s = absl::ErrnoToStatus(errno, StrCat("syncing ", tmp));
    }
  }
  ::close(fd);
  if (s.ok()) {
    struct stat st;
    if (::lstat(dest.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      s = absl::FailedPreconditionError(
          StrCat(dest, " is a directory; name the file to write"));
    }
  }
  // rename(2) replaces a symlink at `dest` itself; it never follows it.
  if (s.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
    s = absl::ErrnoToStatus(errno, StrCat("renaming into ", dest));
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  if (printer) printer->Finish(counter->Snapshot());
  return Status();
}

// A tar stream of the directory t.path and everything under it, entry
// names relative to the directory's parent.
Status GetDirectory(BrowseClient* client, const BrowseTarget& t,
                    const std::string& dest, bool json, uint64_t* files_out,
                    uint64_t* bytes_out) {
  // First the whole tree (one List per directory), so progress has a total.
  struct Item {
    v1::FileEntry entry;
    std::string name;  // in the archive
  };
  std::vector<Item> items;
  const std::string top = t.path == "/" ? "root" : BaseName(t.path);
  uint64_t total = 0;
  // Pre-order (a directory, then everything under it, before its next
  // sibling): tar restores a directory's times once it has seen the last
  // entry inside it.
  std::function<Status(const std::string&, const std::string&, int)> walk =
      [&](const std::string& path, const std::string& name,
          int depth) -> Status {
    if (depth > 4096) {
      return absl::ResourceExhaustedError(
          StrCat(path, " is nested more than 4096 directories deep"));
    }
    auto listing = client->List(t.backup_id, t.partition, path);
    CAIRN_RETURN_IF_ERROR(listing.status());
    if (depth == 0) items.push_back({listing->directory(), name});
    for (const auto& e : listing->entries()) {
      const std::string base = BaseName(e.path());
      if (base.empty() || base == "." || base == ".." ||
          base.find('/') != std::string::npos) {
        return absl::DataLossError(
            StrCat("the media agent listed an unsafe name under ", path));
      }
      const std::string child = name + "/" + base;
      items.push_back({e, child});
      if (e.type() == v1::FileEntry::DIRECTORY) {
        CAIRN_RETURN_IF_ERROR(walk(e.path(), child, depth + 1));
      } else if (e.type() == v1::FileEntry::REGULAR) {
        total += e.size();
      }
    }
    return Status();
  };
  CAIRN_RETURN_IF_ERROR(walk(t.path, top, 0));

  std::unique_ptr<struct archive, int (*)(struct archive*)> ar(
      archive_write_new(), archive_write_free);
  archive_write_set_format_pax(ar.get());
  int r = dest == "-" ? archive_write_open_fd(ar.get(), STDOUT_FILENO)
                      : archive_write_open_filename(ar.get(), dest.c_str());
  if (r != ARCHIVE_OK) {
    return absl::UnavailableError(
        StrCat("opening ", dest, ": ", archive_error_string(ar.get())));
  }
  ProgressCounter counter(total);
  std::unique_ptr<ProgressPrinter> printer;
  if (!json)
    printer = std::make_unique<ProgressPrinter>(StrCat("get ", t.path));
  uint64_t files = 0;
  for (const Item& it : items) {
    const v1::FileEntry& e = it.entry;
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> ae(
        archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(ae.get(), it.name.c_str());
    archive_entry_set_perm(ae.get(), e.mode() & 07777);
    archive_entry_set_uid(ae.get(), e.uid());
    archive_entry_set_gid(ae.get(), e.gid());
    archive_entry_set_mtime(ae.get(), e.mtime_ns() / 1'000'000'000,
                            e.mtime_ns() % 1'000'000'000);
    archive_entry_set_atime(ae.get(), e.atime_ns() / 1'000'000'000,
                            e.atime_ns() % 1'000'000'000);
    switch (e.type()) {
      case v1::FileEntry::DIRECTORY:
        archive_entry_set_filetype(ae.get(), AE_IFDIR);
        break;
      case v1::FileEntry::SYMLINK:
        archive_entry_set_filetype(ae.get(), AE_IFLNK);
        archive_entry_set_symlink(ae.get(), e.symlink_target().c_str());
        break;
      case v1::FileEntry::REGULAR:
        archive_entry_set_filetype(ae.get(), AE_IFREG);
        archive_entry_set_size(ae.get(), static_cast<la_int64_t>(e.size()));
        break;
      case v1::FileEntry::CHAR_DEVICE:
        archive_entry_set_filetype(ae.get(), AE_IFCHR);
        archive_entry_set_rdev(ae.get(), e.rdev());
        break;
      case v1::FileEntry::BLOCK_DEVICE:
        archive_entry_set_filetype(ae.get(), AE_IFBLK);
        archive_entry_set_rdev(ae.get(), e.rdev());
        break;
      case v1::FileEntry::FIFO:
        archive_entry_set_filetype(ae.get(), AE_IFIFO);
        break;
      default:
        continue;  // sockets cannot be archived
    }
    if (archive_write_header(ar.get(), ae.get()) != ARCHIVE_OK) {
      return absl::InternalError(StrCat("writing the tar entry for ", it.name,
                                        ": ", archive_error_string(ar.get())));
    }
    if (e.type() != v1::FileEntry::REGULAR) continue;
    uint64_t written = 0;
    Status s = client->Read(
        t.backup_id, t.partition, e.path(),
        [&](const v1::FileEntry& now) -> Status {
          if (now.size() != e.size()) {
            return absl::DataLossError(
                StrCat(e.path(), " changed size between listing and reading"));
          }
          return Status();
        },
        [&](std::string_view data) -> Status {
          if (archive_write_data(ar.get(), data.data(), data.size()) < 0) {
            return absl::InternalError(StrCat("writing ", it.name, ": ",
                                              archive_error_string(ar.get())));
          }
          written += data.size();
          counter.Add(data.size());
          if (printer) printer->Update(counter.Snapshot());
          return Status();
        });
    CAIRN_RETURN_IF_ERROR(s);
    if (written != e.size()) {
      return absl::DataLossError(
          StrCat(e.path(), ": read ", written, " of ", e.size(), " bytes"));
    }
    ++files;
  }
  if (archive_write_close(ar.get()) != ARCHIVE_OK) {
    return absl::InternalError(
        StrCat("closing ", dest, ": ", archive_error_string(ar.get())));
  }
  if (printer) printer->Finish(counter.Snapshot());
  *files_out = files;
  *bytes_out = counter.Snapshot().done_bytes;
  return Status();
}

// browse get --to-agent: a file-restore job on the client's agent.
int BrowseGetToAgent(AdminClient* admin, const BrowseTarget& target,
                     const CtlInvocation& inv) {
  auto dest = ParseAgentDestination(inv.to_agent);
  if (!dest.ok()) return ReportCtlError(dest.status(), inv.json);
  v1::StartFileRestoreRequest req;
  req.set_backup_id(target.backup_id);
  if (target.partition) req.set_partition(*target.partition);
  req.set_source_path(target.path);
  req.set_client_id(dest->client_id);
  req.set_target_path(dest->path);
  auto job = admin->StartFileRestore(req);
  if (!job.ok()) return ReportCtlError(job.status(), inv.json);
  const std::string what = StrCat(target.backup_id, ":", target.path, " -> ",
                                  dest->client_id, ":", dest->path);
  if (!inv.wait) {
    if (inv.json) {
      cli::PrintJson(JobToJson(*job));
    } else {
      std::cout << FormatJobQueued(*job) << ": " << what
                << "\nfollow it with: cairnctl jobs watch " << job->job_id()
                << "\n";
    }
    return kExitOk;
  }
  if (!inv.json) std::cerr << FormatJobQueued(*job) << ": " << what << "\n";
  return WatchJobToEnd(admin, job->job_id(), inv.json);
}

int BrowseGet(AdminClient* admin, BrowseClient* client,
              const CtlInvocation& inv) {
  auto target = ParseBrowseTarget(inv.id);
  if (!target.ok()) return ReportCtlError(target.status(), inv.json);
  if (!inv.to_agent.empty()) return BrowseGetToAgent(admin, *target, inv);
  // What is it? The parent's listing names its type.
  auto self = client->List(target->backup_id, target->partition, target->path);
  bool is_dir = self.ok();
  if (!self.ok() && !absl::IsFailedPrecondition(self.status())) {
    return ReportCtlError(self.status(), inv.json);
  }
  std::string dest = inv.to;
  if (is_dir) {
    if (dest.empty()) {
      dest =
          (target->path == "/" ? std::string("root") : BaseName(target->path)) +
          ".tar";
    }
    uint64_t files = 0, bytes = 0;
    Status s = GetDirectory(client, *target, dest, inv.json, &files, &bytes);
    if (!s.ok()) return ReportCtlError(s, inv.json);
    if (inv.json) {
      cli::PrintJson({{"backup_id", target->backup_id},
                      {"path", target->path},
                      {"tar", dest},
                      {"files", files},
                      {"bytes", bytes}});
    } else if (dest != "-") {
      std::cerr << "wrote " << dest << ": " << files << " file(s), "
                << FormatBytes(bytes) << "\n";
    }
    return kExitOk;
  }
  if (dest.empty()) dest = BaseName(target->path);
  if (dest == "-") {
    return ReportCtlError(
        absl::InvalidArgumentError("--to - is for directories (a tar stream); "
                                   "name a local file"),
        inv.json);
  }
  std::error_code ec;
  if (std::filesystem::is_directory(dest, ec)) {
    dest = (std::filesystem::path(dest) / BaseName(target->path)).string();
  }
  Status s = GetFile(client, *target, dest, inv.json);
  if (!s.ok()) return ReportCtlError(s, inv.json);
  if (inv.json) {
    cli::PrintJson({{"backup_id", target->backup_id},
                    {"path", target->path},
                    {"to", dest}});
  } else {
    std::cerr << "wrote " << dest << "\n";
  }
  return kExitOk;
}

int BrowseCatalogue(BrowseClient* client, const CtlInvocation& inv) {
  auto resp = client->Catalogue(inv.backup, inv.rebuild);
  if (!resp.ok()) return ReportCtlError(resp.status(), inv.json);
  const auto& c = resp->catalogue();
  auto fs_json = [](const v1::FileSystemCatalogue& fs) {
    return nlohmann::json{
        {"partition", fs.partition()}, {"offset", fs.offset()},
        {"size", fs.size()},           {"fs_type", fs.fs_type()},
        {"label", fs.label()},         {"uuid", fs.uuid()},
        {"error", fs.error()},         {"truncated", fs.truncated()}};
  };
  if (inv.json) {
    nlohmann::json fss = nlohmann::json::array(),
                   skipped = nlohmann::json::array();
    for (const auto& fs : c.filesystems()) fss.push_back(fs_json(fs));
    for (const auto& fs : c.skipped()) skipped.push_back(fs_json(fs));
    cli::PrintJson({{"backup_id", c.backup_id()},
                    {"created", cli::FormatTimestamp(c.created_unix_us())},
                    {"built_now", resp->built_now()},
                    {"filesystems", fss},
                    {"skipped", skipped}});
    return kExitOk;
  }
  std::cout << "file catalogue of " << c.backup_id() << ", recorded "
            << cli::FormatTimestamp(c.created_unix_us())
            << (resp->built_now() ? " (just now)" : "") << "\n";
  for (const auto& fs : c.filesystems()) {
    std::cout << "  partition " << fs.partition() << "  " << fs.fs_type()
              << "  " << FormatBytes(fs.size()) << "  label '" << fs.label()
              << "'  uuid " << fs.uuid()
              << (fs.error().empty() ? "" : "  (" + fs.error() + ")") << "\n";
  }
  for (const auto& fs : c.skipped()) {
    std::cout << "  partition " << fs.partition() << "  "
              << (fs.fs_type().empty() ? "unknown" : fs.fs_type())
              << "  not catalogued: " << fs.error() << "\n";
  }
  return kExitOk;
}

}  // namespace

StatusOr<BrowseTarget> ParseBrowseTarget(std::string_view text) {
  const size_t first = text.find(':');
  if (first == std::string_view::npos || first == 0) {
    return absl::InvalidArgumentError(
        StrCat("'", text, "' is not BACKUP:/path or BACKUP:PARTITION:/path"));
  }
  BrowseTarget t;
  t.backup_id = std::string(text.substr(0, first));
  std::string_view rest = text.substr(first + 1);
  if (!rest.empty() && rest[0] != '/') {
    const size_t second = rest.find(':');
    if (second == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("'", text, "': the path must start with '/'"));
    }
    std::string_view number = rest.substr(0, second);
    uint32_t n = 0;
    auto [end, ec] =
        std::from_chars(number.data(), number.data() + number.size(), n);
    if (number.empty() || ec != std::errc() ||
        end != number.data() + number.size()) {
      return absl::InvalidArgumentError(
          StrCat("'", number, "' is not a partition number"));
    }
    t.partition = n;
    rest = rest.substr(second + 1);
  }
  if (rest.empty() || rest[0] != '/') {
    return absl::InvalidArgumentError(
        StrCat("'", text, "': the path must start with '/'"));
  }
  t.path = std::string(rest);
  return t;
}

StatusOr<AgentDestination> ParseAgentDestination(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        StrCat("--to-agent '", text, "' is not CLIENT:/path"));
  }
  AgentDestination d;
  d.client_id = std::string(text.substr(0, colon));
  std::string_view path = text.substr(colon + 1);
  CAIRN_ASSIGN_OR_RETURN(
      std::vector<std::string> parts,
      SplitAbsolutePath(path, StrCat("--to-agent ", text, ": the path")));
  const bool named = !parts.empty();
  if (!named) {
    return absl::InvalidArgumentError(
        StrCat("--to-agent '", text,
               "': name the file or directory to write, not '/'"));
  }
  d.path = std::string(path);
  return d;
}

int RunBrowseCommand(AdminClient* admin, const CtlInvocation& inv) {
  auto timeout = ParseDuration(inv.timeout);
  if (!timeout.ok()) return ReportCtlError(timeout.status(), inv.json);
  BrowseClient client(admin, inv.server, inv.cred_dir, *timeout);
  switch (inv.command) {
    case CtlCommand::kBrowseLs:
      return BrowseLs(&client, inv);
    case CtlCommand::kBrowseFind:
      return BrowseFind(&client, inv);
    case CtlCommand::kBrowseSearch:
      return BrowseSearch(admin, &client, inv);
    case CtlCommand::kBrowseGet:
      return BrowseGet(admin, &client, inv);
    case CtlCommand::kBrowseCatalogue:
      return BrowseCatalogue(&client, inv);
    default:
      return ReportCtlError(absl::InvalidArgumentError("not a browse command"),
                            inv.json);
  }
}

}  // namespace cairn::ctl
