#include "agent/profile_config_parsers.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <set>

#include "common/strings.h"

namespace cairn::profile {
namespace {

std::vector<std::string_view> Lines(std::string_view text) {
  return SplitLines(text);
}

std::string_view Trim(std::string_view s) { return TrimSpace(s); }

std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, std::string_view seps) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find_first_of(seps, i);
    if (j == std::string_view::npos) j = s.size();
    std::string_view part = Trim(s.substr(i, j - i));
    if (!part.empty()) out.emplace_back(part);
    i = j + 1;
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

Status LineError(std::string_view path, size_t line, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(path, " line ", line, ": ", what));
}

// Minimal INI reader for NetworkManager keyfiles and systemd .network files:
// sections in order, each with its key/value pairs (keys may repeat).
struct IniSection {
  std::string name;
  std::vector<std::pair<std::string, std::string>> entries;
};

StatusOr<std::vector<IniSection>> ParseIni(std::string_view text,
                                           std::string_view path) {
  std::vector<IniSection> out;
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    line = Trim(line);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return LineError(path, n, "unterminated section");
      out.push_back(
          IniSection{std::string(line.substr(1, line.size() - 2)), {}});
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return LineError(path, n, "expected KEY=VALUE");
    }
    if (out.empty()) return LineError(path, n, "key outside a section");
    out.back().entries.emplace_back(std::string(Trim(line.substr(0, eq))),
                                    std::string(Trim(line.substr(eq + 1))));
  }
  return out;
}

}  // namespace

v1::DeviceRefKind ClassifyDeviceRef(std::string_view spec) {
  std::string upper(spec.substr(0, std::min<size_t>(spec.size(), 10)));
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  if (StartsWith(upper, "UUID=")) return v1::DEVICE_REF_KIND_UUID;
  if (StartsWith(upper, "LABEL=")) return v1::DEVICE_REF_KIND_LABEL;
  if (StartsWith(upper, "PARTUUID=")) return v1::DEVICE_REF_KIND_PARTUUID;
  if (StartsWith(upper, "PARTLABEL=")) return v1::DEVICE_REF_KIND_PARTLABEL;
  if (StartsWith(spec, "/dev/disk/by-uuid/")) return v1::DEVICE_REF_KIND_UUID;
  if (StartsWith(spec, "/dev/disk/by-label/")) return v1::DEVICE_REF_KIND_LABEL;
  if (StartsWith(spec, "/dev/disk/by-partuuid/"))
    return v1::DEVICE_REF_KIND_PARTUUID;
  if (StartsWith(spec, "/dev/disk/by-path/"))
    return v1::DEVICE_REF_KIND_BY_PATH;
  if (StartsWith(spec, "/dev/disk/by-id/")) return v1::DEVICE_REF_KIND_BY_ID;
  if (StartsWith(spec, "/dev/mapper/") || StartsWith(spec, "/dev/md") ||
      StartsWith(spec, "/dev/dm-"))
    return v1::DEVICE_REF_KIND_OTHER;
  if (StartsWith(spec, "/dev/")) return v1::DEVICE_REF_KIND_DEVICE_NAME;
  return v1::DEVICE_REF_KIND_OTHER;
}

StatusOr<std::vector<v1::FstabEntry>> ParseFstab(std::string_view text,
                                                 std::string_view path) {
  std::vector<v1::FstabEntry> out;
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    line = Trim(line);
    if (line.empty() || line.front() == '#') continue;
    auto w = Words(line);
    if (w.size() < 2 || w.size() > 6) {
      return LineError(path, n,
                       "expected 2 to 6 fields (spec mount type "
                       "options dump pass)");
    }
    v1::FstabEntry e;
    e.set_spec(std::string(w[0]));
    e.set_mount_point(std::string(w[1]));
    if (w.size() > 2) e.set_fs_type(std::string(w[2]));
    if (w.size() > 3) e.set_options(std::string(w[3]));
    for (size_t i = 4; i < w.size(); ++i) {
      int v = 0;
      auto r = std::from_chars(w[i].data(), w[i].data() + w[i].size(), v);
      if (r.ec != std::errc() || r.ptr != w[i].data() + w[i].size()) {
        return LineError(path, n, StrCat("field ", i + 1, " is not a number"));
      }
      if (i == 4)
        e.set_dump(v);
      else
        e.set_pass(v);
    }
    e.set_ref_kind(ClassifyDeviceRef(e.spec()));
    e.set_line(static_cast<uint32_t>(n));
    out.push_back(std::move(e));
  }
  return out;
}

StatusOr<std::vector<v1::CrypttabEntry>> ParseCrypttab(std::string_view text,
                                                       std::string_view path) {
  std::vector<v1::CrypttabEntry> out;
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    line = Trim(line);
    if (line.empty() || line.front() == '#') continue;
    auto w = Words(line);
    if (w.size() < 2 || w.size() > 4) {
      return LineError(path, n,
                       "expected 2 to 4 fields (name device keyfile "
                       "options)");
    }
    v1::CrypttabEntry e;
    e.set_name(std::string(w[0]));
    e.set_device(std::string(w[1]));
    if (w.size() > 2) e.set_key_file(std::string(w[2]));
    if (w.size() > 3) e.set_options(std::string(w[3]));
    e.set_ref_kind(ClassifyDeviceRef(e.device()));
    e.set_line(static_cast<uint32_t>(n));
    out.push_back(std::move(e));
  }
  return out;
}

StatusOr<std::map<std::string, std::string>> ParseShellAssignments(
    std::string_view text, std::string_view path) {
  std::map<std::string, std::string> out;
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    line = Trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (StartsWith(line, "export ")) line = Trim(line.substr(7));
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return LineError(path, n, "expected KEY=VALUE");
    }
    std::string_view v = Trim(line.substr(eq + 1));
    std::string value;
    if (!v.empty() && (v.front() == '"' || v.front() == '\'')) {
      char q = v.front();
      size_t end = v.find(q, 1);
      while (q == '"' && end != std::string_view::npos && v[end - 1] == '\\') {
        end = v.find(q, end + 1);
      }
      if (end == std::string_view::npos) {
        return LineError(path, n, "unterminated quote");
      }
      for (size_t i = 1; i < end; ++i) {
        if (q == '"' && v[i] == '\\' && i + 1 < end) ++i;
        value.push_back(v[i]);
      }
    } else {
      value = std::string(v);
    }
    out[std::string(Trim(line.substr(0, eq)))] = value;
  }
  return out;
}

StatusOr<std::map<std::string, std::string>> ParseDpkgStatus(
    std::string_view text, std::string_view path) {
  std::map<std::string, std::string> out;
  std::string pkg, status, version;
  auto flush = [&] {
    if (!pkg.empty() && status == "install ok installed") out[pkg] = version;
    pkg.clear();
    status.clear();
    version.clear();
  };
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    if (Trim(line).empty()) {
      flush();
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') continue;  // continuation
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return LineError(path, n, "expected 'Field: value'");
    }
    std::string_view key = line.substr(0, colon);
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "Package")
      pkg = value;
    else if (key == "Status")
      status = value;
    else if (key == "Version")
      version = value;
  }
  flush();
  return out;
}

StatusOr<std::string> ToCidr(std::string_view address,
                             std::string_view netmask) {
  if (address.find('/') != std::string_view::npos || netmask.empty()) {
    return std::string(address);
  }
  int prefix = -1;
  if (netmask.find('.') == std::string_view::npos) {
    int v = 0;
    auto r =
        std::from_chars(netmask.data(), netmask.data() + netmask.size(), v);
    if (r.ec == std::errc() && v >= 0 && v <= 128) prefix = v;
  } else {
    in_addr m;
    std::string mask(netmask);
    if (inet_pton(AF_INET, mask.c_str(), &m) == 1) {
      uint32_t bits = ntohl(m.s_addr);
      int ones = std::popcount(bits);
      // A netmask is contiguous ones followed by zeros.
      if (ones == 0 ? bits == 0
                    : (bits >> (32 - ones)) == (~0u >> (32 - ones)) &&
                          (ones == 32 || (bits << ones) == 0)) {
        prefix = ones;
      }
    }
  }
  if (prefix < 0) {
    return absl::InvalidArgumentError(StrCat("bad netmask '", netmask, "'"));
  }
  return StrCat(address, "/", prefix);
}

Status ParseIfupdown(std::string_view text, std::string_view path,
                     std::vector<v1::InterfaceConfig>* out,
                     std::vector<std::string>* includes) {
  std::set<std::string> autos;
  std::vector<v1::InterfaceConfig> stanzas;
  std::vector<std::string> netmasks;
  v1::InterfaceConfig* cur = nullptr;
  size_t n = 0;
  auto finish_netmask = [&]() -> Status {
    for (size_t i = 0; i < stanzas.size(); ++i) {
      if (netmasks[i].empty() || stanzas[i].addresses_size() == 0) continue;
      auto c = ToCidr(stanzas[i].addresses(0), netmasks[i]);
      if (!c.ok()) {
        return absl::InvalidArgumentError(StrCat(path, ": iface ",
                                                 stanzas[i].name(), ": ",
                                                 ToStd(c.status().message())));
      }
      stanzas[i].set_addresses(0, *c);
    }
    return absl::OkStatus();
  };
  std::string joined;
  for (std::string_view raw : Lines(text)) {
    ++n;
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') continue;
    auto w = Words(line);
    std::string_view kw = w[0];
    if (kw == "auto" || StartsWith(kw, "allow-")) {
      for (size_t i = 1; i < w.size(); ++i) autos.insert(std::string(w[i]));
      cur = nullptr;
      continue;
    }
    if (kw == "source" || kw == "source-directory") {
      if (w.size() < 2) return LineError(path, n, "source without a path");
      std::string p(w[1]);
      if (p.front() != '/') p = StrCat("/etc/network/", p);
      if (kw == "source-directory") p += "/*";
      includes->push_back(p);
      cur = nullptr;
      continue;
    }
    if (kw == "iface") {
      if (w.size() < 4) {
        return LineError(path, n, "expected 'iface NAME FAMILY METHOD'");
      }
      stanzas.emplace_back();
      netmasks.emplace_back();
      cur = &stanzas.back();
      cur->set_system("ifupdown");
      cur->set_file(std::string(path));
      cur->set_name(std::string(w[1]));
      cur->set_method(std::string(w[3]));
      continue;
    }
    if (kw == "mapping" || kw == "rename") {
      cur = nullptr;
      continue;
    }
    if (cur == nullptr) {
      return LineError(path, n,
                       StrCat("option '", kw, "' outside an iface stanza"));
    }
    size_t idx = cur - stanzas.data();
    if (kw == "address" && w.size() >= 2) {
      cur->add_addresses(std::string(w[1]));
    } else if (kw == "netmask" && w.size() >= 2) {
      netmasks[idx] = std::string(w[1]);
    } else if (kw == "gateway" && w.size() >= 2) {
      cur->set_gateway(std::string(w[1]));
    } else if (kw == "dns-nameservers" || kw == "dns-nameserver") {
      for (size_t i = 1; i < w.size(); ++i)
        cur->add_dns_servers(std::string(w[i]));
    } else if (kw == "dns-search") {
      for (size_t i = 1; i < w.size(); ++i)
        cur->add_dns_search(std::string(w[i]));
    } else if (kw == "hwaddress" && w.size() >= 2) {
      cur->set_match_mac(Lower(w.back()));
    } else if (kw == "up" || kw == "post-up") {
      // "up ip route add DEST via GW [metric N]" or "up route add -net ..."
      std::vector<std::string_view> rest(w.begin() + 1, w.end());
      auto it = std::find(rest.begin(), rest.end(), "route");
      if (it != rest.end() && it + 1 != rest.end() && *(it + 1) == "add") {
        v1::Route r;
        for (auto j = it + 2; j != rest.end(); ++j) {
          if ((*j == "via" || *j == "gw") && j + 1 != rest.end()) {
            r.set_gateway(std::string(*++j));
          } else if (*j == "metric" && j + 1 != rest.end()) {
            uint32_t m = 0;
            ++j;
            std::from_chars(j->data(), j->data() + j->size(), m);
            r.set_metric(m);
          } else if (*j == "-net" || *j == "-host" || *j == "dev") {
            if (*j == "dev" && j + 1 != rest.end()) ++j;
          } else if (r.destination().empty()) {
            r.set_destination(std::string(*j));
          }
        }
        *cur->add_routes() = r;
      }
    }
  }
  CAIRN_RETURN_IF_ERROR(finish_netmask());
  for (auto& s : stanzas) {
    s.set_auto_start(autos.count(s.name()) > 0);
    out->push_back(std::move(s));
  }
  return absl::OkStatus();
}

Status ParseNetplan(std::string_view text, std::string_view path,
                    std::vector<v1::InterfaceConfig>* out) {
  try {
    YAML::Node root = YAML::Load(std::string(text));
    YAML::Node net = root["network"];
    if (!net || !net.IsMap()) return absl::OkStatus();
    for (const char* kind : {"ethernets", "bonds", "bridges", "vlans"}) {
      YAML::Node group = net[kind];
      if (!group || !group.IsMap()) continue;
      for (const auto& kv : group) {
        v1::InterfaceConfig c;
        c.set_system("netplan");
        c.set_file(std::string(path));
        std::string id = kv.first.as<std::string>();
        YAML::Node v = kv.second;
        c.set_name(id);
        if (v["match"] && v["match"]["macaddress"]) {
          c.set_match_mac(Lower(v["match"]["macaddress"].as<std::string>()));
          c.set_name(v["set-name"] ? v["set-name"].as<std::string>() : "");
        } else if (v["match"] && v["match"]["name"]) {
          c.set_name(v["match"]["name"].as<std::string>());
        }
        bool dhcp = (v["dhcp4"] && v["dhcp4"].as<std::string>() != "false" &&
                     v["dhcp4"].as<std::string>() != "no") ||
                    (v["dhcp6"] && v["dhcp6"].as<std::string>() != "false" &&
                     v["dhcp6"].as<std::string>() != "no");
        if (v["addresses"] && v["addresses"].IsSequence()) {
          for (const auto& a : v["addresses"]) {
            c.add_addresses(a.IsMap() ? a.begin()->first.as<std::string>()
                                      : a.as<std::string>());
          }
        }
        c.set_method(dhcp ? "dhcp"
                          : (c.addresses_size() ? "static" : "manual"));
        for (const char* g : {"gateway4", "gateway6"}) {
          if (v[g] && c.gateway().empty())
            c.set_gateway(v[g].as<std::string>());
        }
        if (v["routes"] && v["routes"].IsSequence()) {
          for (const auto& r : v["routes"]) {
            v1::Route route;
            if (r["to"]) route.set_destination(r["to"].as<std::string>());
            if (r["via"]) route.set_gateway(r["via"].as<std::string>());
            if (r["metric"]) route.set_metric(r["metric"].as<uint32_t>());
            if (route.destination() == "default" ||
                route.destination() == "0.0.0.0/0") {
              if (c.gateway().empty()) c.set_gateway(route.gateway());
            }
            *c.add_routes() = route;
          }
        }
        if (YAML::Node ns = v["nameservers"]; ns && ns.IsMap()) {
          if (ns["addresses"]) {
            for (const auto& a : ns["addresses"])
              c.add_dns_servers(a.as<std::string>());
          }
          if (ns["search"]) {
            for (const auto& a : ns["search"])
              c.add_dns_search(a.as<std::string>());
          }
        }
        c.set_auto_start(true);
        out->push_back(std::move(c));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat(path, ": not valid netplan YAML: ", e.what()));
  }
  return absl::OkStatus();
}

Status ParseNetworkManagerKeyfile(std::string_view text, std::string_view path,
                                  std::vector<v1::InterfaceConfig>* out) {
  CAIRN_ASSIGN_OR_RETURN(auto sections, ParseIni(text, path));
  v1::InterfaceConfig c;
  c.set_system("networkmanager");
  c.set_file(std::string(path));
  c.set_auto_start(true);
  std::string type;
  for (const auto& s : sections) {
    for (const auto& [k, v] : s.entries) {
      if (s.name == "connection") {
        if (k == "interface-name") c.set_name(v);
        if (k == "type") type = v;
        if (k == "autoconnect" && v == "false") c.set_auto_start(false);
      } else if (s.name == "ethernet" || s.name == "802-3-ethernet") {
        if (k == "mac-address") c.set_match_mac(Lower(v));
      } else if (s.name == "ipv4" || s.name == "ipv6") {
        if (k == "method") {
          if (s.name == "ipv4" || c.method().empty()) {
            c.set_method(v == "manual" ? "static" : v == "auto" ? "dhcp" : v);
          }
        } else if (StartsWith(k, "address")) {
          // "192.0.2.10/24,192.0.2.1" or "192.0.2.10/24;192.0.2.11/24;"
          auto parts = Split(v, ";");
          for (const auto& p : parts) {
            auto ag = Split(p, ",");
            if (ag.empty()) continue;
            c.add_addresses(ag[0]);
            if (ag.size() > 1 && c.gateway().empty()) c.set_gateway(ag[1]);
          }
        } else if (k == "gateway") {
          c.set_gateway(v);
        } else if (k == "dns") {
          for (const auto& d : Split(v, ";")) c.add_dns_servers(d);
        } else if (k == "dns-search") {
          for (const auto& d : Split(v, ";")) c.add_dns_search(d);
        } else if (StartsWith(k, "route") && k.find('_') == std::string::npos) {
          auto f = Split(v, ",");
          if (f.empty()) continue;
          v1::Route r;
          r.set_destination(f[0]);
          if (f.size() > 1) r.set_gateway(f[1]);
          if (f.size() > 2) {
            uint32_t m = 0;
            std::from_chars(f[2].data(), f[2].data() + f[2].size(), m);
            r.set_metric(m);
          }
          *c.add_routes() = r;
        }
      }
    }
  }
  if (!type.empty() && type != "ethernet" && type != "802-3-ethernet" &&
      type != "bond" && type != "bridge" && type != "vlan") {
    return absl::OkStatus();  // wifi, vpn, ...: not tied to a NIC we map
  }
  out->push_back(std::move(c));
  return absl::OkStatus();
}

Status ParseSystemdNetwork(std::string_view text, std::string_view path,
                           std::vector<v1::InterfaceConfig>* out) {
  CAIRN_ASSIGN_OR_RETURN(auto sections, ParseIni(text, path));
  v1::InterfaceConfig c;
  c.set_system("systemd-networkd");
  c.set_file(std::string(path));
  c.set_auto_start(true);
  bool dhcp = false;
  for (const auto& s : sections) {
    v1::Route route;
    bool is_route = s.name == "Route";
    for (const auto& [k, v] : s.entries) {
      if (s.name == "Match") {
        if (k == "Name") c.set_name(v);
        if (k == "MACAddress" || k == "PermanentMACAddress") {
          c.set_match_mac(Lower(v));
        }
      } else if (s.name == "Network") {
        if (k == "Address") c.add_addresses(v);
        if (k == "Gateway" && c.gateway().empty()) c.set_gateway(v);
        if (k == "DNS") {
          for (const auto& d : Split(v, " ")) c.add_dns_servers(d);
        }
        if (k == "Domains") {
          for (const auto& d : Split(v, " ")) c.add_dns_search(d);
        }
        if (k == "DHCP" && v != "no" && v != "false") dhcp = true;
      } else if (s.name == "Address") {
        if (k == "Address") c.add_addresses(v);
      } else if (is_route) {
        if (k == "Destination") route.set_destination(v);
        if (k == "Gateway") route.set_gateway(v);
        if (k == "Metric") {
          uint32_t m = 0;
          std::from_chars(v.data(), v.data() + v.size(), m);
          route.set_metric(m);
        }
      }
    }
    if (is_route) {
      if (route.destination().empty()) route.set_destination("default");
      *c.add_routes() = route;
    }
  }
  c.set_method(dhcp ? "dhcp" : (c.addresses_size() ? "static" : "manual"));
  out->push_back(std::move(c));
  return absl::OkStatus();
}

void ParseResolvConf(std::string_view text, v1::NetworkConfig* out) {
  for (std::string_view line : Lines(text)) {
    auto w = Words(line);
    if (w.size() < 2 || w[0].front() == '#') continue;
    if (w[0] == "nameserver") out->add_resolv_nameservers(std::string(w[1]));
    if (w[0] == "search" || w[0] == "domain") {
      for (size_t i = 1; i < w.size(); ++i) {
        out->add_resolv_search(std::string(w[i]));
      }
    }
  }
}

std::vector<std::string> GrubDeviceReferences(std::string_view text,
                                              std::string_view path) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](std::string ref) {
    if (seen.insert(ref).second) out.push_back(StrCat(path, ": ", ref));
  };
  for (std::string_view line : Lines(text)) {
    std::string_view t = Trim(line);
    if (t.empty() || t.front() == '#') continue;
    auto w = Words(t);
    for (size_t i = 0; i < w.size(); ++i) {
      std::string_view word = w[i];
      // Strip shell quoting around words like "root=UUID=..." in
      // GRUB_CMDLINE_LINUX="...".
      while (!word.empty() && (word.front() == '"' || word.front() == '\''))
        word.remove_prefix(1);
      while (!word.empty() && (word.back() == '"' || word.back() == '\''))
        word.remove_suffix(1);
      size_t eq = word.find('=');
      if (eq != std::string_view::npos) {
        std::string_view key = word.substr(0, eq);
        size_t kstart = key.find_last_of("\"' ");
        if (kstart != std::string_view::npos) key.remove_prefix(kstart + 1);
        if (key == "root" || key == "resume" || key == "cryptdevice") {
          add(StrCat(key, "=", word.substr(eq + 1)));
          continue;
        }
      }
      if (word == "--fs-uuid" || word == "-u") {
        size_t k = i + 1;
        while (k < w.size() && StartsWith(w[k], "-")) ++k;
        if (k < w.size()) add(StrCat("search --fs-uuid ", w[k]));
      } else if (StartsWith(word, "/dev/")) {
        add(std::string(word));
      }
    }
  }
  return out;
}

}  // namespace cairn::profile
