#include "media_agent/retention.h"

#include <algorithm>
#include <functional>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/strings.h"

namespace cairn {
namespace {

using PeriodFn = std::function<std::string(absl::CivilSecond)>;

struct Rule {
  const char* name;
  int count;
  PeriodFn period;
};

}  // namespace

bool RetentionPolicy::KeepsNothing() const {
  return keep_last <= 0 && keep_hourly <= 0 && keep_daily <= 0 &&
         keep_weekly <= 0 && keep_monthly <= 0 && keep_yearly <= 0;
}

StatusOr<std::vector<RetentionDecision>> ApplyRetention(
    std::vector<BackupRef> backups, const RetentionPolicy& p) {
  for (int v : {p.keep_last, p.keep_hourly, p.keep_daily, p.keep_weekly,
                p.keep_monthly, p.keep_yearly}) {
    if (v < 0)
      return absl::InvalidArgumentError(
          "retention counts must not be negative");
  }
  if (p.KeepsNothing()) {
    return absl::InvalidArgumentError(
        "retention policy keeps nothing; give at least one --keep-* rule");
  }
  const std::vector<Rule> rules = {
      {"hourly", p.keep_hourly,
       [](absl::CivilSecond t) {
         return absl::FormatCivilTime(absl::CivilHour(t));
       }},
      {"daily", p.keep_daily,
       [](absl::CivilSecond t) {
         return absl::FormatCivilTime(absl::CivilDay(t));
       }},
      {"weekly", p.keep_weekly,
       [](absl::CivilSecond t) {
         absl::CivilDay d(t);
         // Days since Monday: Monday=0 ... Sunday=6.
         int since_monday = (static_cast<int>(absl::GetWeekday(d)) -
                             static_cast<int>(absl::Weekday::monday) + 7) %
                            7;
         return StrCat("week of ", absl::FormatCivilTime(d - since_monday));
       }},
      {"monthly", p.keep_monthly,
       [](absl::CivilSecond t) {
         return absl::FormatCivilTime(absl::CivilMonth(t));
       }},
      {"yearly", p.keep_yearly,
       [](absl::CivilSecond t) {
         return absl::FormatCivilTime(absl::CivilYear(t));
       }},
  };

  std::map<std::string, std::vector<BackupRef>> by_source;
  for (auto& b : backups) by_source[b.source].push_back(std::move(b));

  std::vector<RetentionDecision> out;
  for (auto& [source, list] : by_source) {
    std::sort(list.begin(), list.end(),
              [](const BackupRef& a, const BackupRef& b) {
                if (a.created_unix_us != b.created_unix_us)
                  return a.created_unix_us > b.created_unix_us;
                return a.backup_id > b.backup_id;
              });
    size_t base = out.size();
    for (auto& b : list) out.push_back({std::move(b), false, {}});
    for (size_t i = 0;
         i < out.size() - base && static_cast<int>(i) < p.keep_last; ++i) {
      out[base + i].keep = true;
      out[base + i].reasons.push_back("last");
    }
    for (const Rule& rule : rules) {
      if (rule.count <= 0) continue;
      int kept = 0;
      std::string last_period;
      for (size_t i = base; i < out.size() && kept < rule.count; ++i) {
        absl::CivilSecond t = absl::ToCivilSecond(
            absl::FromUnixMicros(out[i].backup.created_unix_us),
            absl::UTCTimeZone());
        std::string period = rule.period(t);
        if (period == last_period) continue;
        last_period = period;
        out[i].keep = true;
        out[i].reasons.push_back(StrCat(rule.name, " ", period));
        ++kept;
      }
    }
  }
  return out;
}

StatusOr<PruneReport> Prune(Repository* repo, const PruneOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(auto ids, repo->manifests().List());
  std::vector<BackupRef> refs;
  for (const auto& id : ids) {
    CAIRN_ASSIGN_OR_RETURN(Manifest m, repo->LoadManifest(id, nullptr));
    if (!options.source.empty() && m.source != options.source) continue;
    refs.push_back({m.backup_id, m.source, m.created_unix_us});
  }
  PruneReport report;
  CAIRN_ASSIGN_OR_RETURN(report.decisions,
                         ApplyRetention(std::move(refs), options.policy));
  if (options.dry_run) return report;
  for (const auto& d : report.decisions) {
    if (d.keep) continue;
    CAIRN_RETURN_IF_ERROR(repo->DeleteBackup(d.backup.backup_id));
    ++report.removed;
  }
  return report;
}

}  // namespace cairn
