#include "media_agent/guest_config_edits.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "common/strings.h"

namespace cairn {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}
bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)); }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(c));
  return out;
}
std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(c));
  return out;
}

// Calls `edit(line, number)` for every line (1-based) and joins the results,
// keeping the text's final newline (or its absence).
template <typename F>
std::string MapLines(std::string_view text, F&& edit) {
  std::string out;
  out.reserve(text.size() + 64);
  std::vector<std::string_view> lines = SplitLines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    out += edit(lines[i], static_cast<uint32_t>(i + 1));
    if (i + 1 < lines.size() || (!text.empty() && text.back() == '\n')) {
      out.push_back('\n');
    }
  }
  return out;
}

bool IsComment(std::string_view line, bool ini_style) {
  std::string_view t = TrimSpace(line);
  return t.empty() || t.front() == '#' || (ini_style && t.front() == ';');
}

// Replaces field `index` (0-based, fields separated by blanks) of a
// table-style line (fstab, crypttab) when `stable` maps it.
std::string RewriteField(std::string_view line, uint32_t number, size_t index,
                         const StableReferenceFn& stable,
                         std::vector<std::string>* changes) {
  if (IsComment(line, false)) return std::string(line);
  size_t pos = 0;
  size_t field = 0;
  while (pos < line.size()) {
    while (pos < line.size() &&
           std::isspace(static_cast<unsigned char>(line[pos])))
      ++pos;
    if (pos >= line.size()) break;
    size_t end = pos;
    while (end < line.size() &&
           !std::isspace(static_cast<unsigned char>(line[end])))
      ++end;
    if (field == index) {
      std::string_view spec = line.substr(pos, end - pos);
      if (!IsUnstableDeviceReference(spec)) return std::string(line);
      std::optional<std::string> to = stable(spec);
      if (!to.has_value()) {
        changes->push_back(StrCat("line ", number, ": ", spec,
                                  " left as it is (no stable id found)"));
        return std::string(line);
      }
      changes->push_back(StrCat("line ", number, ": ", spec, " -> ", *to));
      return StrCat(line.substr(0, pos), *to, line.substr(end));
    }
    ++field;
    pos = end;
  }
  return std::string(line);
}

// The changes that only say a reference was left alone are not edits.
ConfigEdit Finish(std::string text, std::vector<std::string> notes,
                  std::string_view original) {
  ConfigEdit e;
  if (text == original) {
    e.text = std::string(original);
    return e;
  }
  e.text = std::move(text);
  e.changes = std::move(notes);
  return e;
}

// One colon-separated MAC at `line[pos]`, bounded by non-hex characters.
bool MacAt(std::string_view line, size_t pos) {
  if (pos + 17 > line.size()) return false;
  if (pos > 0 && (IsHex(line[pos - 1]) || line[pos - 1] == ':')) return false;
  for (size_t i = 0; i < 17; ++i) {
    char c = line[pos + i];
    if (i % 3 == 2 ? c != ':' : !IsHex(c)) return false;
  }
  if (pos + 17 < line.size() &&
      (IsHex(line[pos + 17]) || line[pos + 17] == ':')) {
    return false;
  }
  return true;
}

}  // namespace

std::optional<uint32_t> PartitionOfDeviceName(std::string_view device) {
  constexpr std::string_view kDev = "/dev/";
  if (device.substr(0, kDev.size()) != kDev) return std::nullopt;
  std::string_view name = device.substr(kDev.size());
  auto digits_suffix = [](std::string_view s) {
    size_t n = 0;
    while (n < s.size() && IsDigit(s[s.size() - 1 - n])) ++n;
    return n;
  };
  auto number = [](std::string_view s) -> std::optional<uint32_t> {
    if (s.empty() || s.size() > 4) return std::nullopt;
    uint32_t v = 0;
    for (char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
    return v;
  };
  // nvme0n1p3, mmcblk0p2: a 'p' separates the partition number.
  for (std::string_view prefix : {"nvme", "mmcblk"}) {
    if (name.substr(0, prefix.size()) != prefix) continue;
    size_t p = name.rfind('p');
    if (p == std::string_view::npos || p < prefix.size()) return 0;
    std::string_view disk = name.substr(0, p);
    std::string_view part = name.substr(p + 1);
    if (digits_suffix(part) != part.size() || part.empty()) return std::nullopt;
    if (disk.empty() || !IsDigit(disk.back())) return std::nullopt;
    return number(part);
  }
  for (std::string_view prefix : {"sd", "vd", "hd", "xvd"}) {
    if (name.substr(0, prefix.size()) != prefix) continue;
    std::string_view rest = name.substr(prefix.size());
    size_t n = digits_suffix(rest);
    std::string_view letters = rest.substr(0, rest.size() - n);
    if (letters.empty() || letters.size() > 3) return std::nullopt;
    for (char c : letters) {
      if (c < 'a' || c > 'z') return std::nullopt;
    }
    if (n == 0) return 0;
    return number(rest.substr(rest.size() - n));
  }
  return std::nullopt;
}

bool IsUnstableDeviceReference(std::string_view spec) {
  if (spec.substr(0, 18) == "/dev/disk/by-path/" ||
      spec.substr(0, 16) == "/dev/disk/by-id/") {
    return true;
  }
  return PartitionOfDeviceName(spec).has_value();
}

ConfigEdit RewriteFstab(std::string_view text,
                        const StableReferenceFn& stable) {
  std::vector<std::string> changes;
  std::string out = MapLines(text, [&](std::string_view line, uint32_t n) {
    return RewriteField(line, n, 0, stable, &changes);
  });
  return Finish(std::move(out), std::move(changes), text);
}

ConfigEdit RewriteCrypttab(std::string_view text,
                           const StableReferenceFn& stable) {
  std::vector<std::string> changes;
  std::string out = MapLines(text, [&](std::string_view line, uint32_t n) {
    return RewriteField(line, n, 1, stable, &changes);
  });
  return Finish(std::move(out), std::move(changes), text);
}

ConfigEdit RewriteGrubDefaults(std::string_view text,
                               const StableReferenceFn& stable) {
  std::vector<std::string> changes;
  std::string out = MapLines(text, [&](std::string_view line, uint32_t n) {
    std::string_view t = TrimSpace(line);
    if (IsComment(line, false) || (t.substr(0, 18) != "GRUB_CMDLINE_LINUX")) {
      return std::string(line);
    }
    std::string result(line);
    for (std::string_view key : {"root=", "resume="}) {
      size_t pos = 0;
      while ((pos = result.find(key, pos)) != std::string::npos) {
        if (pos > 0 && IsWordChar(result[pos - 1])) {
          pos += key.size();
          continue;
        }
        size_t start = pos + key.size();
        size_t end = start;
        while (end < result.size() &&
               !std::isspace(static_cast<unsigned char>(result[end])) &&
               result[end] != '"' && result[end] != '\'') {
          ++end;
        }
        std::string spec = result.substr(start, end - start);
        if (IsUnstableDeviceReference(spec)) {
          std::optional<std::string> to = stable(spec);
          if (to.has_value()) {
            changes.push_back(
                StrCat("line ", n, ": ", key, spec, " -> ", key, *to));
            result.replace(start, end - start, *to);
            end = start + to->size();
          } else {
            changes.push_back(StrCat("line ", n, ": ", key, spec,
                                     " left as it is (no stable id found)"));
          }
        }
        pos = end;
      }
    }
    return result;
  });
  return Finish(std::move(out), std::move(changes), text);
}

ConfigEdit RenameNics(std::string_view text,
                      const std::vector<v1::NicRename>& renames) {
  std::vector<std::pair<std::string, std::string>> names;  // from, to
  std::vector<std::pair<std::string, std::string>> macs;   // lower case
  for (const v1::NicRename& r : renames) {
    if (!r.source_name().empty() && !r.target_name().empty() &&
        r.source_name() != r.target_name()) {
      names.emplace_back(r.source_name(), r.target_name());
    }
    if (!r.source_mac().empty() && !r.target_mac().empty() &&
        Lower(r.source_mac()) != Lower(r.target_mac())) {
      macs.emplace_back(Lower(r.source_mac()), Lower(r.target_mac()));
    }
  }
  std::vector<std::string> changes;
  std::string out = MapLines(text, [&](std::string_view line, uint32_t n) {
    if (IsComment(line, true)) return std::string(line);
    std::string result;
    std::vector<std::string> line_changes;
    size_t i = 0;
    while (i < line.size()) {
      if (MacAt(line, i)) {
        std::string_view mac = line.substr(i, 17);
        std::string lower = Lower(mac);
        auto it = std::find_if(macs.begin(), macs.end(),
                               [&](const auto& m) { return m.first == lower; });
        if (it != macs.end()) {
          bool upper = mac != lower;
          std::string to = upper ? Upper(it->second) : it->second;
          line_changes.push_back(StrCat(mac, " -> ", to));
          result += to;
        } else {
          result += mac;
        }
        i += 17;
        continue;
      }
      if (IsWordChar(line[i])) {
        size_t end = i;
        while (end < line.size() && IsWordChar(line[end])) ++end;
        std::string_view word = line.substr(i, end - i);
        auto it = std::find_if(names.begin(), names.end(),
                               [&](const auto& m) { return m.first == word; });
        if (it != names.end()) {
          line_changes.push_back(StrCat(word, " -> ", it->second));
          result += it->second;
        } else {
          result += word;
        }
        i = end;
        continue;
      }
      result.push_back(line[i]);
      ++i;
    }
    for (const std::string& c : line_changes) {
      changes.push_back(StrCat("line ", n, ": ", c));
    }
    return result;
  });
  return Finish(std::move(out), std::move(changes), text);
}

ConfigEdit AddInitramfsToolsModules(std::string_view text,
                                    const std::vector<std::string>& modules,
                                    std::string_view why) {
  std::set<std::string> present;
  for (std::string_view line : SplitLines(text)) {
    if (IsComment(line, false)) continue;
    std::string_view t = TrimSpace(line);
    size_t space = t.find_first_of(" \t");
    present.insert(std::string(t.substr(0, space)));
  }
  std::vector<std::string> add;
  for (const std::string& m : modules) {
    std::string dashless = m;
    std::replace(dashless.begin(), dashless.end(), '-', '_');
    std::string dashed = m;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    if (present.count(dashless) || present.count(dashed)) continue;
    if (std::find(add.begin(), add.end(), m) != add.end()) continue;
    add.push_back(m);
  }
  ConfigEdit e;
  e.text = std::string(text);
  if (add.empty()) return e;
  if (!e.text.empty() && e.text.back() != '\n') e.text.push_back('\n');
  e.text += StrCat("# ", why, "\n");
  for (const std::string& m : add) {
    e.text += m + "\n";
    e.changes.push_back(StrCat("added ", m));
  }
  return e;
}

ConfigEdit AddFstabEntry(std::string_view text, std::string_view entry,
                         std::string_view mount_point, std::string_view why) {
  ConfigEdit e;
  e.text = std::string(text);
  for (std::string_view line : SplitLines(text)) {
    if (IsComment(line, false)) continue;
    std::string_view t = TrimSpace(line);
    size_t a = t.find_first_of(" \t");
    if (a == std::string_view::npos) continue;
    std::string_view rest = TrimSpace(t.substr(a));
    std::string_view mp = rest.substr(0, rest.find_first_of(" \t"));
    if (mp == mount_point) return e;
  }
  if (!e.text.empty() && e.text.back() != '\n') e.text.push_back('\n');
  e.text += StrCat("# ", why, "\n", entry, "\n");
  e.changes.push_back(StrCat("added ", entry));
  return e;
}

std::string DracutDropIn(const std::vector<std::string>& modules,
                         std::string_view why) {
  std::string list;
  for (const std::string& m : modules) list += " " + m;
  return StrCat("# ", why, "\nadd_drivers+=\"", list, " \"\n");
}

std::string InitramfsToolsModulesPolicy(std::string_view initramfs_conf) {
  std::string policy = "most";
  for (std::string_view line : SplitLines(initramfs_conf)) {
    if (IsComment(line, false)) continue;
    std::string_view t = TrimSpace(line);
    if (t.substr(0, 8) != "MODULES=") continue;
    std::string_view v = TrimSpace(t.substr(8));
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') &&
        v.back() == v.front()) {
      v = v.substr(1, v.size() - 2);
    }
    policy = std::string(v);
  }
  return policy;
}

bool IsValidModuleName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), IsWordChar);
}

}  // namespace cairn
