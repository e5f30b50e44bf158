#include "common/compression.h"

#include <zstd.h>

#include "common/strings.h"

namespace cairn {
namespace {

struct ThreadContexts {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ~ThreadContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

ThreadContexts& Contexts() {
  thread_local ThreadContexts contexts;
  return contexts;
}

}  // namespace

Status ValidateZstdLevel(int level) {
  if (level < 1 || level > 19) {
    return absl::InvalidArgumentError(
        StrCat("zstd level must be between 1 and 19, got ", level));
  }
  return absl::OkStatus();
}

Status ZstdCompress(std::string_view input, int level, std::string* out) {
  CAIRN_RETURN_IF_ERROR(ValidateZstdLevel(level));
  size_t base = out->size();
  out->resize(base + ZSTD_compressBound(input.size()));
  size_t n =
      ZSTD_compressCCtx(Contexts().cctx, out->data() + base, out->size() - base,
                        input.data(), input.size(), level);
  if (ZSTD_isError(n)) {
    out->resize(base);
    return absl::InternalError(StrCat("zstd compress: ", ZSTD_getErrorName(n)));
  }
  out->resize(base + n);
  return absl::OkStatus();
}

Status ZstdDecompress(std::string_view frame, size_t expected_size,
                      std::string* out) {
  unsigned long long content =
      ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content == ZSTD_CONTENTSIZE_ERROR) {
    return absl::DataLossError("zstd: not a valid frame");
  }
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != expected_size) {
    return absl::DataLossError(StrCat("zstd: frame holds ", content,
                                      " bytes, expected ", expected_size));
  }
  out->resize(expected_size);
  size_t n = ZSTD_decompressDCtx(Contexts().dctx, out->data(), out->size(),
                                 frame.data(), frame.size());
  if (ZSTD_isError(n)) {
    out->clear();
    return absl::DataLossError(
        StrCat("zstd decompress: ", ZSTD_getErrorName(n)));
  }
  if (n != expected_size) {
    out->clear();
    return absl::DataLossError(
        StrCat("zstd: decompressed ", n, " bytes, expected ", expected_size));
  }
  return absl::OkStatus();
}

}  // namespace cairn
