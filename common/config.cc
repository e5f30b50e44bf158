#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <map>

#include "absl/strings/ascii.h"
#include "common/strings.h"

namespace cairn {

namespace {
std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         absl::ascii_isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() &&
         absl::ascii_isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}
}  // namespace

StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view t = Trim(text);
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || ptr == t.data()) {
    return absl::InvalidArgumentError(StrCat("not a byte size: '", text, "'"));
  }
  std::string unit = absl::AsciiStrToLower(
      std::string(Trim(std::string_view(ptr, t.data() + t.size() - ptr))));
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else if (unit == "k" || unit == "kib") {
    shift = 10;
  } else if (unit == "m" || unit == "mib") {
    shift = 20;
  } else if (unit == "g" || unit == "gib") {
    shift = 30;
  } else if (unit == "t" || unit == "tib") {
    shift = 40;
  } else {
    return absl::InvalidArgumentError(StrCat("unknown size unit '", unit,
                                             "' in '", text,
                                             "' (use KiB, MiB, GiB, TiB)"));
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) {
    return absl::InvalidArgumentError(StrCat("size too large: '", text, "'"));
  }
  return value << shift;
}

ConfigReader::ConfigReader(std::shared_ptr<const std::string> file,
                           std::string prefix, std::unique_ptr<YAML::Node> node)
    : file_(std::move(file)),
      prefix_(std::move(prefix)),
      node_(std::move(node)) {}
ConfigReader::ConfigReader(ConfigReader&&) noexcept = default;
ConfigReader& ConfigReader::operator=(ConfigReader&&) noexcept = default;
ConfigReader::~ConfigReader() = default;

namespace {

// yaml-cpp keeps both entries of a repeated key and answers lookups with the
// first, so a repeated key would be silently ignored: refuse it, at any depth.
Status CheckDuplicateKeys(const YAML::Node& node, std::string_view name) {
  if (node.IsMap()) {
    std::map<std::string, int> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const int line = it->first.Mark().line + 1;
      auto [at, inserted] = seen.emplace(it->first.Scalar(), line);
      if (!inserted) {
        return absl::InvalidArgumentError(
            StrCat(name, ":", line, ": duplicate key '", it->first.Scalar(),
                   "' (first at line ", at->second, ")"));
      }
      CAIRN_RETURN_IF_ERROR(CheckDuplicateKeys(it->second, name));
    }
  } else if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      CAIRN_RETURN_IF_ERROR(CheckDuplicateKeys(item, name));
    }
  }
  return Status();
}

}  // namespace

StatusOr<ConfigReader> ConfigReader::LoadString(std::string_view text,
                                                std::string_view name) {
  auto file = std::make_shared<const std::string>(name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat(name, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg));
  }
  CAIRN_RETURN_IF_ERROR(CheckDuplicateKeys(root, name));
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(StrCat(
        name, ":", root.Mark().line + 1, ": the top level must be a mapping"));
  }
  return ConfigReader(file, "", std::make_unique<YAML::Node>(root));
}

StatusOr<ConfigReader> ConfigReader::LoadFile(const std::string& path) {
  std::string text;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ErrnoToStatus(errno, "open config", path);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  return LoadString(text, path);
}

std::string ConfigReader::KeyPath(std::string_view key) const {
  return StrCat(prefix_, key);
}

bool ConfigReader::Has(std::string_view key) const {
  return static_cast<bool>((*node_)[std::string(key)]);
}

Status ConfigReader::ErrorAt(std::string_view key,
                             std::string_view message) const {
  YAML::Node value = (*node_)[std::string(key)];
  int line = value ? value.Mark().line + 1 : node_->Mark().line + 1;
  return absl::InvalidArgumentError(
      StrCat(*file_, ":", line, ": ", KeyPath(key), ": ", message));
}

StatusOr<std::string> ConfigReader::GetString(std::string_view key,
                                              std::string fallback) {
  consumed_.emplace(key);
  YAML::Node v = (*node_)[std::string(key)];
  if (!v) return fallback;
  if (!v.IsScalar()) return ErrorAt(key, "expected a string");
  return v.Scalar();
}

StatusOr<int64_t> ConfigReader::GetInt(std::string_view key, int64_t fallback) {
  consumed_.emplace(key);
  YAML::Node v = (*node_)[std::string(key)];
  if (!v) return fallback;
  if (!v.IsScalar()) return ErrorAt(key, "expected an integer");
  const std::string& s = v.Scalar();
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return ErrorAt(key, StrCat("expected an integer, got '", s, "'"));
  }
  return out;
}

StatusOr<bool> ConfigReader::GetBool(std::string_view key, bool fallback) {
  consumed_.emplace(key);
  YAML::Node v = (*node_)[std::string(key)];
  if (!v) return fallback;
  std::string s = v.IsScalar() ? absl::AsciiStrToLower(v.Scalar()) : "";
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return ErrorAt(key, StrCat("expected true or false, got '",
                             v.IsScalar() ? v.Scalar() : "a collection", "'"));
}

StatusOr<std::vector<std::string>> ConfigReader::GetStringList(
    std::string_view key) {
  consumed_.emplace(key);
  YAML::Node v = (*node_)[std::string(key)];
  std::vector<std::string> out;
  if (!v || v.IsNull()) return out;
  if (!v.IsSequence()) return ErrorAt(key, "expected a list of strings");
  for (const YAML::Node& item : v) {
    if (!item.IsScalar()) {
      return ErrorAt(key, "expected a list of strings, found a collection");
    }
    out.push_back(item.Scalar());
  }
  return out;
}

StatusOr<uint64_t> ConfigReader::GetSize(std::string_view key,
                                         uint64_t fallback) {
  consumed_.emplace(key);
  YAML::Node v = (*node_)[std::string(key)];
  if (!v) return fallback;
  if (!v.IsScalar()) return ErrorAt(key, "expected a size such as 4MiB");
  auto size = ParseByteSize(v.Scalar());
  if (!size.ok()) return ErrorAt(key, ToStd(size.status().message()));
  return *size;
}

StatusOr<ConfigReader> ConfigReader::GetSection(std::string_view key) {
  consumed_.emplace(key);
  YAML::Node v = (*node_)[std::string(key)];
  if (!v || v.IsNull()) {
    return ConfigReader(file_, StrCat(KeyPath(key), "."),
                        std::make_unique<YAML::Node>(YAML::NodeType::Map));
  }
  if (!v.IsMap()) return ErrorAt(key, "expected a mapping");
  return ConfigReader(file_, StrCat(KeyPath(key), "."),
                      std::make_unique<YAML::Node>(v));
}

Status ConfigReader::Finish() const {
  for (auto it = node_->begin(); it != node_->end(); ++it) {
    std::string key = it->first.Scalar();
    if (!consumed_.contains(key)) {
      return absl::InvalidArgumentError(
          StrCat(*file_, ":", it->first.Mark().line + 1, ": unknown key '",
                 KeyPath(key), "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cairn
