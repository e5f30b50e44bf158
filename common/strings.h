// StrCat for Cairn. Debian 12's Abseil is built with its own
// absl::string_view (not an alias of std::string_view), so absl::StrCat
// refuses std::string_view arguments. This small replacement accepts both,
// plus strings, characters and numbers, and is what Cairn code calls.
#ifndef CAIRN_COMMON_STRINGS_H_
#define CAIRN_COMMON_STRINGS_H_

#include <cctype>
#include <concepts>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace cairn {
namespace strings_internal {

inline void Append(std::string* out, std::string_view s) { out->append(s); }
inline void Append(std::string* out, const std::string& s) { out->append(s); }
inline void Append(std::string* out, const char* s) { out->append(s); }
inline void Append(std::string* out, char c) { out->push_back(c); }
inline void Append(std::string* out, bool b) {
  out->append(b ? "true" : "false");
}
template <typename T>
requires std::same_as<T, absl::string_view> &&
    (!std::same_as<absl::string_view, std::string_view>)inline void Append(
        std::string* out, const T& s) {
  out->append(s.data(), s.size());
}
template <std::integral T>
requires(!std::same_as<T, char> &&
         !std::same_as<T, bool>) inline void Append(std::string* out, T v) {
  out->append(std::to_string(v));
}
template <std::floating_point T>
inline void Append(std::string* out, T v) {
  out->append(std::to_string(v));
}

}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (strings_internal::Append(&out, args), ...);
  return out;
}

// absl::string_view (e.g. Status::message()) to std::string_view.
// The lines of `text` without their '\n' (a final line without one counts;
// an empty text has none). Views into `text`.
inline std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    out.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// `s` without leading and trailing white space (std::isspace).
inline std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

inline std::string_view ToStd(absl::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace cairn

#endif  // CAIRN_COMMON_STRINGS_H_
