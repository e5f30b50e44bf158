// gRPC message size limits, one place for every client and server
// (documented per service in proto/cairn/v1/*.proto and docs/admin-guide.md).
//
//   control  AgentControl, Admin, Health: 4 MiB. Commands, reports, listings
//            and certificates are far smaller; a larger message is refused
//            with RESOURCE_EXHAUSTED before it is parsed.
//   media    MediaService: 17 MiB, one stored chunk (at most 16 MiB plus its
//            header) and the request's other fields.
//
// A process that serves both on one port (cairn-server --embedded-media)
// must accept the larger limit on that port; its control handlers then
// check the size of what they parse (server/storage_manager.h).
#ifndef CAIRN_COMMON_MESSAGE_LIMITS_H_
#define CAIRN_COMMON_MESSAGE_LIMITS_H_

namespace cairn {

inline constexpr int kControlMaxMessageBytes = 4 << 20;
inline constexpr int kMediaMaxMessageBytes = 17 << 20;

}  // namespace cairn

#endif  // CAIRN_COMMON_MESSAGE_LIMITS_H_
