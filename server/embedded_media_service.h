// The MediaService of the media agent cairn-server hosts in-process
// (--embedded-media): media_agent/media_service.h's MediaServiceHandler with
// the storage manager's revocation check added. Because the embedded media
// agent shares the catalog, a revoked client is refused on every data-path
// call at once, not only when its ticket expires.
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_EMBEDDED_MEDIA_SERVICE_H_
#define CAIRN_SERVER_EMBEDDED_MEDIA_SERVICE_H_

#include <memory>

#include "media_agent/media_service.h"
#include "server/peer_authorizer.h"

namespace cairn {

// A MediaServiceHandler over `data_path` that also refuses callers
// `authorizer` no longer accepts (PermissionDenied, checked after the
// certificate is identified and before its role). Neither argument is owned;
// both must outlive the handler.
std::unique_ptr<MediaServiceHandler> MakeEmbeddedMediaService(
    DataPath* data_path, const PeerAuthorizer* authorizer);

}  // namespace cairn

#endif  // CAIRN_SERVER_EMBEDDED_MEDIA_SERVICE_H_
