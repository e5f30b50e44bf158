#include "common/role.h"

#include <array>
#include <string>
#include <utility>

#include "common/strings.h"

namespace cairn {
namespace {

constexpr std::array<std::pair<Role, std::string_view>, 7> kRoles = {{
    {Role::kAdmin, "admin"},
    {Role::kOperator, "operator"},
    {Role::kHelpdesk, "helpdesk"},
    {Role::kAuditor, "auditor"},
    {Role::kAgent, "agent"},
    {Role::kMedia, "media"},
    {Role::kSystem, "system"},
}};

}  // namespace

std::string_view RoleName(Role role) {
  for (const auto& [r, name] : kRoles) {
    if (r == role) return name;
  }
  return "unknown";
}

StatusOr<Role> ParseRole(std::string_view name) {
  std::string valid;
  for (const auto& [r, n] : kRoles) {
    if (n == name) return r;
    if (r == Role::kSystem) continue;  // exists, but nobody is given it
    valid += valid.empty() ? "" : ", ";
    valid += n;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown role '", name.substr(0, 64), "'; valid roles: ", valid));
}

bool IsValidIdentity(std::string_view identity) {
  if (identity.empty() || identity.size() > 128) return false;
  if (identity.front() == '.') return false;
  for (char c : identity) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace cairn
