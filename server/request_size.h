// The control-plane message limit, checked by the handlers themselves
// (common/message_limits.h): when cairn-server hosts the embedded media
// agent its port must accept 17 MiB messages for chunks, so AgentControl and
// Admin refuse anything above kControlMaxMessageBytes here.
//
// Thread safety: a pure function.
#ifndef CAIRN_SERVER_REQUEST_SIZE_H_
#define CAIRN_SERVER_REQUEST_SIZE_H_

#include <google/protobuf/message.h>

#include <string_view>

#include "common/message_limits.h"
#include "common/status.h"
#include "common/strings.h"

namespace cairn {

// ResourceExhausted naming `what` and both sizes if `request` serializes to
// more than kControlMaxMessageBytes.
inline Status CheckControlRequestSize(const google::protobuf::Message& request,
                                      std::string_view what) {
  size_t size = request.ByteSizeLong();
  if (size > static_cast<size_t>(kControlMaxMessageBytes)) {
    return absl::ResourceExhaustedError(
        StrCat(what, ": message of ", size, " bytes exceeds the ",
               kControlMaxMessageBytes, "-byte limit"));
  }
  return Status();
}

}  // namespace cairn

#endif  // CAIRN_SERVER_REQUEST_SIZE_H_
