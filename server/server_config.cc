#include "server/server_config.h"

#include "common/config.h"
#include "common/manifest.h"

namespace cairn {

Status LoadServerConfig(const std::string& path, ServerConfig* config) {
  CAIRN_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::LoadFile(path));
  StorageManagerOptions& o = config->run;
  CAIRN_ASSIGN_OR_RETURN(o.dir, r.GetString("dir", o.dir));
  CAIRN_ASSIGN_OR_RETURN(o.listen, r.GetString("listen", o.listen));
  CAIRN_ASSIGN_OR_RETURN(config->log_level,
                         r.GetString("log_level", config->log_level));
  CAIRN_ASSIGN_OR_RETURN(int64_t grace, r.GetInt("shutdown_grace_seconds",
                                                 o.shutdown_grace.count()));
  if (grace < 0 || grace > 3600) {
    return r.ErrorAt("shutdown_grace_seconds", "must be 0..3600");
  }
  o.shutdown_grace = std::chrono::seconds(grace);
  CAIRN_ASSIGN_OR_RETURN(
      int64_t heartbeat,
      r.GetInt(
          "heartbeat_seconds",
          std::chrono::duration_cast<std::chrono::seconds>(o.heartbeat_interval)
              .count()));
  if (heartbeat < 1 || heartbeat > 3600) {
    return r.ErrorAt("heartbeat_seconds", "must be 1..3600");
  }
  o.heartbeat_interval = std::chrono::seconds(heartbeat);
  CAIRN_ASSIGN_OR_RETURN(
      int64_t reconnect,
      r.GetInt(
          "reconnect_grace_seconds",
          std::chrono::duration_cast<std::chrono::seconds>(o.reconnect_grace)
              .count()));
  if (reconnect < 0 || reconnect > 86400) {
    return r.ErrorAt("reconnect_grace_seconds", "must be 0..86400");
  }
  o.reconnect_grace = std::chrono::seconds(reconnect);

  CAIRN_ASSIGN_OR_RETURN(ConfigReader backup, r.GetSection("backup"));
  CAIRN_ASSIGN_OR_RETURN(uint64_t chunk_size,
                         backup.GetSize("chunk_size", o.chunk_size));
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize ||
      (chunk_size & (chunk_size - 1)) != 0) {
    return backup.ErrorAt("chunk_size",
                          "must be a power of two from 64KiB to 16MiB");
  }
  o.chunk_size = static_cast<uint32_t>(chunk_size);
  CAIRN_ASSIGN_OR_RETURN(int64_t level,
                         backup.GetInt("zstd_level", o.zstd_level));
  if (level < 1 || level > 19) {
    return backup.ErrorAt("zstd_level", "must be 1..19");
  }
  o.zstd_level = static_cast<int>(level);
  CAIRN_RETURN_IF_ERROR(backup.Finish());

  CAIRN_ASSIGN_OR_RETURN(ConfigReader media, r.GetSection("embedded_media"));
  CAIRN_ASSIGN_OR_RETURN(o.embedded_media,
                         media.GetBool("enabled", o.embedded_media));
  CAIRN_ASSIGN_OR_RETURN(o.store, media.GetString("store", o.store));
  CAIRN_ASSIGN_OR_RETURN(o.media_address,
                         media.GetString("address", o.media_address));
  CAIRN_ASSIGN_OR_RETURN(o.browse, media.GetBool("browse", o.browse));
  CAIRN_ASSIGN_OR_RETURN(
      o.catalogue_after_backup,
      media.GetBool("catalogue_after_backup", o.catalogue_after_backup));
  CAIRN_ASSIGN_OR_RETURN(o.browse_sandbox,
                         media.GetBool("browse_sandbox", o.browse_sandbox));
  CAIRN_ASSIGN_OR_RETURN(
      int64_t idle,
      media.GetInt("browse_idle_seconds", o.browse_idle_timeout.count()));
  if (idle < 1 || idle > 86400) {
    return media.ErrorAt("browse_idle_seconds", "must be 1..86400");
  }
  o.browse_idle_timeout = std::chrono::seconds(idle);
  CAIRN_RETURN_IF_ERROR(media.Finish());
  return r.Finish();
}

}  // namespace cairn
