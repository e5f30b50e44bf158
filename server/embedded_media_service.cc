#include "server/embedded_media_service.h"

namespace cairn {

std::unique_ptr<MediaServiceHandler> MakeEmbeddedMediaService(
    DataPath* data_path, const PeerAuthorizer* authorizer) {
  return std::make_unique<MediaServiceHandler>(
      data_path, [authorizer](const PeerIdentity& peer) {
        return authorizer->CheckActive(peer);
      });
}

}  // namespace cairn
