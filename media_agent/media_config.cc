#include "media_agent/media_config.h"

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/env.h"
#include "common/strings.h"

namespace cairn {

std::string EncodeMediaConfig(const MediaConfig& c) {
  // A JSON string is a valid YAML double-quoted scalar.
  auto q = [](const std::string& s) { return nlohmann::json(s).dump(); };
  return StrCat("# cairn-media state (written by `cairn-media enroll`)\n",
                "server: ", q(c.server), "\n", "identity: ", q(c.identity),
                "\n", "address: ", q(c.address), "\n", "listen: ", q(c.listen),
                "\n", "store: ", q(c.store), "\n");
}

StatusOr<MediaConfig> ParseMediaConfig(std::string_view text,
                                       std::string_view name) {
  CAIRN_ASSIGN_OR_RETURN(ConfigReader config,
                         ConfigReader::LoadString(text, name));
  MediaConfig c;
  CAIRN_ASSIGN_OR_RETURN(c.server, config.GetString("server", ""));
  CAIRN_ASSIGN_OR_RETURN(c.identity, config.GetString("identity", ""));
  CAIRN_ASSIGN_OR_RETURN(c.address, config.GetString("address", ""));
  CAIRN_ASSIGN_OR_RETURN(c.listen, config.GetString("listen", ""));
  CAIRN_ASSIGN_OR_RETURN(c.store, config.GetString("store", ""));
  CAIRN_RETURN_IF_ERROR(config.Finish());
  for (auto [key, value] :
       {std::pair{"server", &c.server}, std::pair{"identity", &c.identity},
        std::pair{"address", &c.address}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(StrCat(
          name, ": ", key, ": required (written by cairn-media enroll)"));
    }
  }
  if (c.listen.empty()) c.listen = c.address;
  return c;
}

StatusOr<MediaConfig> LoadMediaConfig(const std::string& state_dir) {
  const std::string path = JoinPath(state_dir, kMediaConfigFile);
  std::string text;
  Status s = Env::Default()->ReadFileToString(path, &text);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(
        StrCat(path,
               " does not exist: enroll this media agent first "
               "(cairn-media enroll --state-dir ",
               state_dir, " ...)"));
  }
  CAIRN_RETURN_IF_ERROR(s);
  return ParseMediaConfig(text, path);
}

Status WriteMediaConfig(const std::string& state_dir,
                        const MediaConfig& config) {
  return WritePrivateFileAtomically(JoinPath(state_dir, kMediaConfigFile),
                                    EncodeMediaConfig(config));
}

}  // namespace cairn
