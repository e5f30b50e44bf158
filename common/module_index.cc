#include "common/module_index.h"

#include <fnmatch.h>
#include <libkmod.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "common/strings.h"

namespace cairn {
namespace {

constexpr size_t kMaxModaliasBytes = 1024;

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Literal prefix of an fnmatch pattern (up to the first metacharacter), used
// to skip most patterns with one comparison.
std::string_view LiteralPrefix(std::string_view pattern) {
  size_t n = pattern.find_first_of("*?[\\");
  return n == std::string_view::npos ? pattern : pattern.substr(0, n);
}

struct AliasPattern {
  std::string pattern;
  std::string module;
  bool builtin;
};

class FileModuleIndex : public ModuleIndex {
 public:
  static StatusOr<std::unique_ptr<ModuleIndex>> Create(
      const v1::ModuleIndexFiles& files) {
    auto index = std::unique_ptr<FileModuleIndex>(new FileModuleIndex());
    CAIRN_RETURN_IF_ERROR(index->Parse(files));
    return std::unique_ptr<ModuleIndex>(std::move(index));
  }

  StatusOr<std::vector<KernelModule>> Lookup(
      std::string_view modalias) const override {
    CAIRN_RETURN_IF_ERROR(ValidateModalias(modalias));
    std::string subject(modalias);
    std::set<std::string> names;
    for (const AliasPattern& a : aliases_) {
      std::string_view prefix = LiteralPrefix(a.pattern);
      if (subject.compare(0, prefix.size(), prefix) != 0) continue;
      if (::fnmatch(a.pattern.c_str(), subject.c_str(), 0) == 0) {
        names.insert(a.module);
      }
    }
    std::vector<KernelModule> out;
    for (const auto& n : names) {
      auto m = FindNormalized(n);
      if (m.has_value()) {
        out.push_back(*m);
      } else {
        // An alias for a module neither in modules.dep nor built in: still a
        // match, without a path (reported as absent from the tree).
        out.push_back(KernelModule{n, false, ""});
      }
    }
    return out;
  }

  StatusOr<std::optional<KernelModule>> Find(
      std::string_view name) const override {
    return FindNormalized(NormalizeModuleName(name));
  }

  StatusOr<std::vector<std::string>> Dependencies(
      std::string_view name) const override {
    std::string n = NormalizeModuleName(name);
    auto it = deps_.find(n);
    if (it != deps_.end()) return it->second;
    if (builtin_.count(n)) return std::vector<std::string>();
    return absl::NotFoundError(
        StrCat("module ", n, " is not in modules.dep or modules.builtin"));
  }

  std::string Backend() const override { return "recorded-indices"; }

 private:
  std::optional<KernelModule> FindNormalized(const std::string& n) const {
    if (auto it = paths_.find(n); it != paths_.end()) {
      return KernelModule{n, false, it->second};
    }
    if (builtin_.count(n)) return KernelModule{n, true, ""};
    return std::nullopt;
  }

  Status Parse(const v1::ModuleIndexFiles& f) {
    if (Trim(f.modules_dep()).empty() || Trim(f.modules_alias()).empty()) {
      return absl::FailedPreconditionError(
          "the profile has no recorded modules.dep/modules.alias for this "
          "kernel (its module tree was not found when it was collected)");
    }
    uint32_t line_no = 0;
    for (std::string_view line : SplitLines(f.modules_dep())) {
      ++line_no;
      line = Trim(line);
      if (line.empty()) continue;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return absl::InvalidArgumentError(
            StrCat("modules.dep line ", line_no, ": expected 'PATH: DEPS'"));
      }
      std::string path(Trim(line.substr(0, colon)));
      std::string name = NormalizeModuleName(path);
      std::vector<std::string> deps;
      std::string_view rest = line.substr(colon + 1);
      size_t i = 0;
      while (i < rest.size()) {
        while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\t')) ++i;
        size_t j = i;
        while (j < rest.size() && rest[j] != ' ' && rest[j] != '\t') ++j;
        if (j > i) deps.push_back(NormalizeModuleName(rest.substr(i, j - i)));
        i = j;
      }
      // modules.dep lists the module's last dependency first; modprobe loads
      // from the end of the list.
      std::reverse(deps.begin(), deps.end());
      paths_[name] = path;
      deps_[name] = std::move(deps);
    }
    line_no = 0;
    for (std::string_view line : SplitLines(f.modules_builtin())) {
      ++line_no;
      line = Trim(line);
      if (line.empty()) continue;
      builtin_.insert(NormalizeModuleName(line));
    }
    line_no = 0;
    for (std::string_view line : SplitLines(f.modules_alias())) {
      ++line_no;
      line = Trim(line);
      if (line.empty() || line.front() == '#') continue;
      // "alias PATTERN MODULE"
      if (line.substr(0, 6) != "alias ") {
        return absl::InvalidArgumentError(
            StrCat("modules.alias line ", line_no,
                   ": expected 'alias PATTERN MODULE'"));
      }
      std::string_view rest = Trim(line.substr(6));
      size_t sp = rest.find_last_of(" \t");
      if (sp == std::string_view::npos) {
        return absl::InvalidArgumentError(
            StrCat("modules.alias line ", line_no,
                   ": expected 'alias PATTERN MODULE'"));
      }
      aliases_.push_back(AliasPattern{std::string(Trim(rest.substr(0, sp))),
                                      NormalizeModuleName(rest.substr(sp + 1)),
                                      false});
    }
    // modules.builtin.modinfo: NUL-separated "module.key=value" records.
    const std::string& mi = f.modules_builtin_modinfo();
    size_t i = 0;
    while (i < mi.size()) {
      size_t j = mi.find('\0', i);
      if (j == std::string::npos) j = mi.size();
      std::string_view rec(mi.data() + i, j - i);
      i = j + 1;
      size_t dot = rec.find('.');
      size_t eq = rec.find('=');
      if (dot == std::string_view::npos || eq == std::string_view::npos ||
          dot > eq) {
        continue;  // not "module.key=value"; modinfo has free-form values
      }
      if (rec.substr(dot + 1, eq - dot - 1) != "alias") continue;
      std::string module = NormalizeModuleName(rec.substr(0, dot));
      builtin_.insert(module);
      aliases_.push_back(
          AliasPattern{std::string(rec.substr(eq + 1)), module, true});
    }
    return absl::OkStatus();
  }

  std::vector<AliasPattern> aliases_;
  std::unordered_map<std::string, std::string> paths_;
  std::unordered_map<std::string, std::vector<std::string>> deps_;
  std::set<std::string> builtin_;
};

// libkmod-backed index. The context reads only `dir`'s indices: an empty
// config path list keeps the host's /etc/modprobe.d out of the answers.
class KmodModuleIndex : public ModuleIndex {
 public:
  static StatusOr<std::unique_ptr<ModuleIndex>> Create(const std::string& dir) {
    for (const char* f :
         {"modules.dep.bin", "modules.alias.bin", "modules.builtin.bin"}) {
      struct stat st;
      std::string p = StrCat(dir, "/", f);
      if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return absl::FailedPreconditionError(
            StrCat(dir, " has no ", f,
                   " (run depmod, or use the indices "
                   "recorded in the profile)"));
      }
    }
    static const char* const kNoConfig[] = {nullptr};
    kmod_ctx* ctx = kmod_new(dir.c_str(), kNoConfig);
    if (ctx == nullptr) {
      return absl::InternalError(StrCat("libkmod could not open ", dir));
    }
    kmod_set_log_fn(
        ctx,
        [](void*, int, const char*, int, const char*, const char*, va_list) {},
        nullptr);
    // No kmod_load_resources(): it insists on every index (modules.symbols.bin
    // too), while lookups open the indices they need on demand.
    return std::unique_ptr<ModuleIndex>(new KmodModuleIndex(ctx, dir));
  }

  ~KmodModuleIndex() override { kmod_unref(ctx_); }

  StatusOr<std::vector<KernelModule>> Lookup(
      std::string_view modalias) const override {
    CAIRN_RETURN_IF_ERROR(ValidateModalias(modalias));
    std::string alias(modalias);
    kmod_list* list = nullptr;
    int err = kmod_module_new_from_lookup(ctx_, alias.c_str(), &list);
    if (err < 0) {
      return absl::InvalidArgumentError(StrCat(
          "libkmod lookup of modalias '", modalias, "' failed: error ", -err));
    }
    std::map<std::string, KernelModule> found;
    kmod_list* it;
    kmod_list_foreach(it, list) {
      kmod_module* mod = kmod_module_get_module(it);
      KernelModule m = Describe(mod);
      found.emplace(m.name, std::move(m));
      kmod_module_unref(mod);
    }
    kmod_module_unref_list(list);
    std::vector<KernelModule> out;
    for (auto& [_, m] : found) out.push_back(std::move(m));
    return out;
  }

  StatusOr<std::optional<KernelModule>> Find(
      std::string_view name) const override {
    std::string n = NormalizeModuleName(name);
    kmod_module* mod = nullptr;
    int err = kmod_module_new_from_name_lookup(ctx_, n.c_str(), &mod);
    if (err < 0 || mod == nullptr) return std::optional<KernelModule>();
    KernelModule m = Describe(mod);
    kmod_module_unref(mod);
    if (!m.builtin && m.path.empty()) return std::optional<KernelModule>();
    return std::optional<KernelModule>(std::move(m));
  }

  StatusOr<std::vector<std::string>> Dependencies(
      std::string_view name) const override {
    std::string n = NormalizeModuleName(name);
    kmod_module* mod = nullptr;
    int err = kmod_module_new_from_name_lookup(ctx_, n.c_str(), &mod);
    if (err < 0 || mod == nullptr) {
      return absl::NotFoundError(
          StrCat("module ", n, " is not in modules.dep or modules.builtin"));
    }
    if (const char* path = kmod_module_get_path(mod); path != nullptr) {
      // libkmod stats every dependency's file and silently drops the list
      // when one is missing; refuse a tree without its .ko files instead.
      struct stat st;
      if (::stat(path, &st) != 0) {
        std::string missing = path;
        kmod_module_unref(mod);
        return absl::FailedPreconditionError(
            StrCat(missing,
                   " is missing: libkmod needs the module files themselves "
                   "(use the indices recorded in the profile instead)"));
      }
    }
    std::vector<std::string> out;
    kmod_list* deps = kmod_module_get_dependencies(mod);
    kmod_list* it;
    kmod_list_foreach(it, deps) {
      kmod_module* d = kmod_module_get_module(it);
      out.push_back(NormalizeModuleName(kmod_module_get_name(d)));
      kmod_module_unref(d);
    }
    kmod_module_unref_list(deps);
    bool known = kmod_module_get_path(mod) != nullptr || IsBuiltin(mod);
    kmod_module_unref(mod);
    if (!known) {
      return absl::NotFoundError(
          StrCat("module ", n, " is not in modules.dep or modules.builtin"));
    }
    // libkmod already returns load order (modules.dep lists it reversed).
    return out;
  }

  std::string Backend() const override { return StrCat("libkmod:", dir_); }

 private:
  KmodModuleIndex(kmod_ctx* ctx, std::string dir)
      : ctx_(ctx), dir_(std::move(dir)) {}

  static bool IsBuiltin(kmod_module* mod) {
    // Only asked for modules without a path: kmod answers BUILTIN from the
    // context's modules.builtin.bin before it would look at the host's /sys.
    return kmod_module_get_initstate(mod) == KMOD_MODULE_BUILTIN;
  }

  KernelModule Describe(kmod_module* mod) const {
    KernelModule m;
    m.name = NormalizeModuleName(kmod_module_get_name(mod));
    const char* path = kmod_module_get_path(mod);
    if (path != nullptr) {
      std::string_view p = path;
      std::string prefix = StrCat(dir_, "/");
      if (p.substr(0, prefix.size()) == prefix) p.remove_prefix(prefix.size());
      m.path = std::string(p);
    } else {
      m.builtin = IsBuiltin(mod);
    }
    return m;
  }

  kmod_ctx* ctx_;
  std::string dir_;
};

}  // namespace

std::string NormalizeModuleName(std::string_view name_or_path) {
  size_t slash = name_or_path.rfind('/');
  if (slash != std::string_view::npos) name_or_path.remove_prefix(slash + 1);
  for (std::string_view suffix : {".ko.xz", ".ko.zst", ".ko.gz", ".ko"}) {
    if (name_or_path.size() > suffix.size() &&
        name_or_path.substr(name_or_path.size() - suffix.size()) == suffix) {
      name_or_path.remove_suffix(suffix.size());
      break;
    }
  }
  std::string out(name_or_path);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

Status ValidateModalias(std::string_view modalias) {
  if (modalias.empty()) return absl::InvalidArgumentError("empty modalias");
  if (modalias.size() > kMaxModaliasBytes) {
    return absl::InvalidArgumentError(StrCat("modalias longer than ",
                                             kMaxModaliasBytes, " bytes: '",
                                             modalias.substr(0, 64), "...'"));
  }
  for (char c : modalias) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      return absl::InvalidArgumentError(
          StrCat("modalias '", modalias, "' contains the glob character '", c,
                 "': a modalias is matched as data, never as a pattern, and "
                 "no kernel bus emits one"));
    }
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(StrCat(
          "modalias contains control character 0x", static_cast<int>(u)));
    }
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<ModuleIndex>> ModuleIndexFromFiles(
    const v1::ModuleIndexFiles& files) {
  return FileModuleIndex::Create(files);
}

StatusOr<std::unique_ptr<ModuleIndex>> ModuleIndexFromKmod(
    const std::string& module_dir) {
  return KmodModuleIndex::Create(module_dir);
}

}  // namespace cairn
