// Parsers for the configuration files a HardwareProfile records: fstab,
// crypttab, os-release, the dpkg status database, ifupdown, netplan,
// NetworkManager keyfiles, systemd-networkd, resolv.conf and GRUB's files.
//
// Each takes the file's text and the machine path it came from (named in
// every error) and fills part of a v1 message. They never touch the file
// system, so tests feed them strings. Malformed input is InvalidArgument
// naming "PATH line N"; they never throw (yaml-cpp exceptions are caught
// here).
//
// Thread safety: pure functions.
#ifndef CAIRN_AGENT_PROFILE_CONFIG_PARSERS_H_
#define CAIRN_AGENT_PROFILE_CONFIG_PARSERS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"

namespace cairn::profile {

// Classifies an fstab/crypttab device field ("UUID=...", "/dev/sda1", ...).
v1::DeviceRefKind ClassifyDeviceRef(std::string_view spec);

StatusOr<std::vector<v1::FstabEntry>> ParseFstab(std::string_view text,
                                                 std::string_view path);
StatusOr<std::vector<v1::CrypttabEntry>> ParseCrypttab(std::string_view text,
                                                       std::string_view path);

// KEY=VALUE lines with shell quoting (os-release, /etc/default/grub).
StatusOr<std::map<std::string, std::string>> ParseShellAssignments(
    std::string_view text, std::string_view path);

// Installed packages ("Status: install ok installed") -> version.
StatusOr<std::map<std::string, std::string>> ParseDpkgStatus(
    std::string_view text, std::string_view path);

// ifupdown /etc/network/interfaces (one file; `includes` receives the
// patterns of its source/source-directory lines, relative paths resolved
// against /etc/network).
Status ParseIfupdown(std::string_view text, std::string_view path,
                     std::vector<v1::InterfaceConfig>* out,
                     std::vector<std::string>* includes);

Status ParseNetplan(std::string_view text, std::string_view path,
                    std::vector<v1::InterfaceConfig>* out);

Status ParseNetworkManagerKeyfile(std::string_view text, std::string_view path,
                                  std::vector<v1::InterfaceConfig>* out);

Status ParseSystemdNetwork(std::string_view text, std::string_view path,
                           std::vector<v1::InterfaceConfig>* out);

void ParseResolvConf(std::string_view text, v1::NetworkConfig* out);

// Device references in a GRUB configuration: root=..., search --fs-uuid X,
// /dev/... words. Each "PATH: reference", in file order, unique.
std::vector<std::string> GrubDeviceReferences(std::string_view text,
                                              std::string_view path);

// "192.0.2.10" + "255.255.255.0" -> "192.0.2.10/24"; an address that has a
// prefix already is returned as is. InvalidArgument for a bad netmask.
StatusOr<std::string> ToCidr(std::string_view address,
                             std::string_view netmask);

}  // namespace cairn::profile

#endif  // CAIRN_AGENT_PROFILE_CONFIG_PARSERS_H_
