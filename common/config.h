// YAML configuration files with errors that name the file, the key and the
// line, e.g. "media.yaml:7: store.zstd_level: expected an integer, got 'fast'".
//
// A ConfigReader walks one mapping. Each getter consumes a key; Finish()
// reports any key nobody asked for, so a typo ("chunck_size") is an error,
// not a silently ignored setting.
//
// Thread safety: not thread-safe; use from one thread while loading.
#ifndef CAIRN_COMMON_CONFIG_H_
#define CAIRN_COMMON_CONFIG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace YAML {
class Node;
}

namespace cairn {

class ConfigReader {
 public:
  // Parses `path`. InvalidArgument with file:line on a YAML syntax error or
  // if the top level is not a mapping; NotFound if the file is missing.
  static StatusOr<ConfigReader> LoadFile(const std::string& path);
  // Parses YAML text; `name` stands in for the file name in errors.
  static StatusOr<ConfigReader> LoadString(std::string_view text,
                                           std::string_view name);

  ConfigReader(ConfigReader&&) noexcept;
  ConfigReader& operator=(ConfigReader&&) noexcept;
  ~ConfigReader();

  // Each getter returns `fallback` when the key is absent, and an error that
  // names key and line when the value has the wrong type.
  StatusOr<std::string> GetString(std::string_view key, std::string fallback);
  StatusOr<int64_t> GetInt(std::string_view key, int64_t fallback);
  StatusOr<bool> GetBool(std::string_view key, bool fallback);
  // A sequence of strings (e.g. an argv); absent: empty. A scalar or a
  // nested collection is an error.
  StatusOr<std::vector<std::string>> GetStringList(std::string_view key);
  // A byte size: an integer or a number with a unit (KiB, MiB, GiB, TiB,
  // K, M, G, T - all powers of 1024), e.g. "4MiB".
  StatusOr<uint64_t> GetSize(std::string_view key, uint64_t fallback);
  // A nested mapping; NotFound-free: an absent key gives an empty mapping.
  StatusOr<ConfigReader> GetSection(std::string_view key);
  bool Has(std::string_view key) const;

  // An error for `key` that names file, key path and line.
  Status ErrorAt(std::string_view key, std::string_view message) const;

  // InvalidArgument naming the first key that no getter consumed.
  Status Finish() const;

 private:
  ConfigReader(std::shared_ptr<const std::string> file, std::string prefix,
               std::unique_ptr<YAML::Node> node);
  std::string KeyPath(std::string_view key) const;

  std::shared_ptr<const std::string> file_;
  std::string prefix_;  // "store." for a nested section
  std::unique_ptr<YAML::Node> node_;
  std::set<std::string, std::less<>> consumed_;
};

// Parses a byte size such as "4MiB", "64K" or "1048576".
StatusOr<uint64_t> ParseByteSize(std::string_view text);

}  // namespace cairn

#endif  // CAIRN_COMMON_CONFIG_H_
