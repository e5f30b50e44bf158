#include "cli/ctl_output.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "common/cli.h"
#include "common/strings.h"

namespace cairn::ctl {
namespace {

std::string Time(int64_t unix_us) {
  return unix_us > 0 ? cli::FormatTimestamp(unix_us) : "-";
}

std::string Or(const std::string& s, const char* fallback = "-") {
  return s.empty() ? std::string(fallback) : s;
}

std::string Percent(uint64_t done, uint64_t total) {
  if (total == 0) return "-";
  return StrCat(std::min<uint64_t>(100, done * 100 / total), "%");
}

}  // namespace

int ExitCodeForStatus(const Status& s) { return cli::ExitCode(s); }

bool IsTerminalJobState(std::string_view state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

int ExitCodeForJob(const v1::JobInfo& job) {
  return (job.state() == "failed" || job.state() == "cancelled")
             ? kExitJobFailed
             : kExitOk;
}

int ReportCtlError(const Status& s, bool json) {
  return cli::ReportError(s, json);
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < width.size())
        line += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(header);
  for (const auto& r : rows) emit(r);
  return out;
}

nlohmann::json TokenToJson(const v1::CreateTokenResponse& t) {
  return {{"token", t.token()},
          {"expires", Time(t.expires_unix_us())},
          {"expires_unix_us", t.expires_unix_us()},
          {"ca_fingerprint", t.ca_fingerprint()}};
}

nlohmann::json ClientToJson(const v1::ClientInfo& c) {
  return {{"client_id", c.client_id()},
          {"hostname", c.hostname()},
          {"enrolled", Time(c.enrolled_unix_us())},
          {"last_seen", Time(c.last_seen_unix_us())},
          {"connected", c.connected()},
          {"revoked", c.revoked()}};
}

nlohmann::json BackupToJson(const v1::BackupInfo& b) {
  return {{"backup_id", b.backup_id()},
          {"client_id", b.client_id()},
          {"kind", b.kind()},
          {"parent_id", b.parent_id()},
          {"created", Time(b.created_unix_us())},
          {"image_size", b.image_size()},
          {"new_stored_bytes", b.new_stored_bytes()},
          {"media_id", b.media_id()},
          {"encrypted", b.encrypted()},
          {"status", b.status()}};
}

nlohmann::json TemplateToJson(const v1::TemplateInfo& t) {
  return {{"name", t.name()},
          {"image_id", t.image_id()},
          {"description", t.description()},
          {"kernel_version", t.kernel_version()},
          {"os_name", t.os_name()},
          {"profile_sha256", t.profile_sha256()},
          {"image_size", t.image_size()},
          {"created", Time(t.created_unix_us())},
          {"created_by", t.created_by()}};
}

std::string FormatTemplates(const v1::ListTemplatesResponse& r) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : r.templates()) {
    rows.push_back({t.name(), t.kernel_version(), Or(t.os_name()), t.image_id(),
                    FormatBytes(t.image_size())});
  }
  if (rows.empty()) return "no boot templates\n";
  return FormatTable({"NAME", "KERNEL", "OS", "IMAGE", "SIZE"}, rows);
}

std::string FormatTemplate(const v1::TemplateInfo& t) {
  return StrCat(
      "template:    ", t.name(), "\n", "kernel:      ", t.kernel_version(),
      "\n", "os:          ", Or(t.os_name()), "\n",
      "image:       ", t.image_id(), " (", FormatBytes(t.image_size()), ")\n",
      "profile:     ", t.profile_sha256(), "\n",
      "description: ", Or(t.description()), "\n",
      "created:     ", Time(t.created_unix_us()), " by ", Or(t.created_by()),
      "\n");
}

nlohmann::json JobToJson(const v1::JobInfo& j) {
  return {{"job_id", j.job_id()},
          {"kind", j.kind()},
          {"client_id", j.client_id()},
          {"state", j.state()},
          {"done_bytes", j.done_bytes()},
          {"total_bytes", j.total_bytes()},
          {"bytes_per_second", j.bytes_per_second()},
          // A succeeded job's message is its result (a restore's figures:
          // chunks written, skipped, verified), not an error.
          {"error", j.state() == "succeeded" ? std::string() : j.error()},
          {"result", j.state() == "succeeded" ? j.error() : std::string()},
          {"backup_id", j.backup_id()},
          {"phase", j.phase()},
          {"result_backup_id", j.result_backup_id()},
          {"created", Time(j.created_unix_us())},
          {"finished", Time(j.finished_unix_us())}};
}

std::string FormatToken(const v1::CreateTokenResponse& t,
                        std::string_view role) {
  return StrCat("token:           ", t.token(), "\n", "role:            ", role,
                "\n", "expires:         ", Time(t.expires_unix_us()), "\n",
                "ca fingerprint:  ", t.ca_fingerprint(), "\n",
                "The token is shown once and enrolls one machine:\n",
                "  cairn-agent enroll --server HOST:PORT --token ", t.token(),
                " --ca-fingerprint ", t.ca_fingerprint(),
                " --state-dir /var/lib/cairn-agent\n");
}

std::string FormatClients(const v1::ListClientsResponse& r) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : r.clients()) {
    std::string state = c.revoked()     ? "revoked"
                        : c.connected() ? "connected"
                                        : "offline";
    rows.push_back({c.client_id(), Or(c.hostname()), state,
                    Time(c.last_seen_unix_us()), Time(c.enrolled_unix_us())});
  }
  if (rows.empty()) return "no clients enrolled\n";
  return FormatTable({"CLIENT", "HOSTNAME", "STATE", "LAST SEEN", "ENROLLED"},
                     rows);
}

std::string FormatClient(const v1::ClientInfo& c) {
  return StrCat("client:     ", c.client_id(), "\n",
                "hostname:   ", Or(c.hostname()), "\n",
                "connected:  ", c.connected() ? "yes" : "no", "\n",
                "revoked:    ", c.revoked() ? "yes" : "no", "\n",
                "last seen:  ", Time(c.last_seen_unix_us()), "\n",
                "enrolled:   ", Time(c.enrolled_unix_us()), "\n");
}

std::string FormatBackups(const v1::ListBackupsResponse& r) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : r.backups()) {
    rows.push_back({b.backup_id(), b.client_id(), Or(b.kind()),
                    Time(b.created_unix_us()), FormatBytes(b.image_size()),
                    FormatBytes(b.new_stored_bytes()),
                    b.encrypted() ? "yes" : "no"});
  }
  if (rows.empty()) return "no backups\n";
  return FormatTable(
      {"BACKUP", "CLIENT", "KIND", "CREATED", "SIZE", "NEW", "ENCRYPTED"},
      rows);
}

std::string FormatBackup(const v1::BackupInfo& b) {
  return StrCat("backup:       ", b.backup_id(), "\n",
                "client:       ", b.client_id(), "\n",
                "kind:         ", Or(b.kind()), "\n",
                "parent:       ", Or(b.parent_id()), "\n",
                "created:      ", Time(b.created_unix_us()), "\n",
                "image size:   ", FormatBytes(b.image_size()), "\n",
                "new stored:   ", FormatBytes(b.new_stored_bytes()), "\n",
                "media agent:  ", Or(b.media_id()), "\n",
                "encrypted:    ", b.encrypted() ? "yes" : "no", "\n");
}

std::string FormatJobs(const v1::ListJobsResponse& r) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : r.jobs()) {
    rows.push_back({std::to_string(j.job_id()), j.kind(), j.client_id(),
                    j.state(), Percent(j.done_bytes(), j.total_bytes()),
                    Time(j.created_unix_us()), Or(j.backup_id()),
                    Or(j.error(), "")});
  }
  if (rows.empty()) return "no jobs\n";
  return FormatTable(
      {"JOB", "KIND", "CLIENT", "STATE", "DONE", "CREATED", "BACKUP", "ERROR"},
      rows);
}

std::string FormatJob(const v1::JobInfo& j) {
  std::string out =
      StrCat("job:       ", j.job_id(), "\n", "kind:      ", j.kind(), "\n",
             "client:    ", j.client_id(), "\n", "state:     ", j.state(), "\n",
             "progress:  ", FormatBytes(j.done_bytes()), " / ",
             FormatBytes(j.total_bytes()), " (",
             Percent(j.done_bytes(), j.total_bytes()), ")\n",
             "backup:    ", Or(j.backup_id()), "\n",
             "created:   ", Time(j.created_unix_us()), "\n",
             "finished:  ", Time(j.finished_unix_us()), "\n");
  if (!j.phase().empty()) out += StrCat("phase:     ", j.phase(), "\n");
  if (!j.result_backup_id().empty()) {
    out += StrCat("image:     ", j.result_backup_id(), "\n");
  }
  if (!j.error().empty()) {
    out += StrCat(j.state() == "succeeded" ? "result:    " : "error:     ",
                  j.error(), "\n");
  }
  return out;
}

std::string FormatJobQueued(const v1::JobInfo& j) {
  return StrCat("job ", j.job_id(), " ", Or(j.state(), "queued"), " (",
                j.kind(), " on ", j.client_id(), ")");
}

std::string FormatJobOutcome(const v1::JobInfo& j) {
  std::string line = StrCat("job ", j.job_id(), " ", j.state());
  if (j.state() == "succeeded") {
    if (j.kind() == "backup") {
      line += StrCat(": backup ", Or(j.backup_id()), " committed, ",
                     FormatBytes(j.total_bytes()), " image");
    } else if (j.kind() == "restore") {
      line += StrCat(": restored ", Or(j.backup_id()));
      uint64_t size = std::max(j.total_bytes(), j.done_bytes());
      if (size > 0) line += StrCat(", ", FormatBytes(size));
      if (!j.error().empty()) line += StrCat(" (", j.error(), ")");
    } else if (j.kind() == "restore-build") {
      line += StrCat(": customized image ", Or(j.result_backup_id()), " of ",
                     Or(j.backup_id()), ", ", FormatBytes(j.total_bytes()));
    }
    if (j.created_unix_us() > 0 && j.finished_unix_us() > j.created_unix_us()) {
      line += StrCat(
          " in ",
          FormatDuration((j.finished_unix_us() - j.created_unix_us()) / 1e6));
    }
  } else if (!j.error().empty()) {
    line += StrCat(": ", j.error());
  }
  return line;
}

ProgressSnapshot JobProgressSnapshot(const v1::JobInfo& j,
                                     double elapsed_seconds) {
  ProgressSnapshot s;
  s.done_bytes = j.done_bytes();
  s.total_bytes = j.total_bytes();
  s.elapsed_seconds = elapsed_seconds;
  s.bytes_per_second = j.bytes_per_second();
  if (s.bytes_per_second <= 0 && elapsed_seconds > 0) {
    s.bytes_per_second = s.done_bytes / elapsed_seconds;
  }
  if (s.bytes_per_second > 0 && s.total_bytes >= s.done_bytes) {
    s.eta_seconds = (s.total_bytes - s.done_bytes) / s.bytes_per_second;
  }
  return s;
}

}  // namespace cairn::ctl
