// Implements docs/formats/chunk.md.
#include "common/chunk_format.h"

#include <cstring>

#include "common/coding.h"
#include "common/compression.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/strings.h"

namespace cairn {
namespace {

// Offsets within the 52-byte header.
constexpr size_t kOffVersion = 4;
constexpr size_t kOffFlags = 5;
constexpr size_t kOffPlainSize = 8;
constexpr size_t kOffPayloadSize = 12;
constexpr size_t kOffPayloadCrc = 16;
constexpr size_t kOffNonce = 20;
constexpr size_t kOffTag = 32;
constexpr size_t kOffHeaderCrc = 48;
// GCM additional data: the chunk id, then header bytes [0, 12) (magic,
// version, flags, reserved, plaintext size), binding ciphertext to its id.
constexpr size_t kAadHeaderBytes = 12;

std::string MakeAad(const ChunkId& id, const char* header) {
  std::string aad(id.AsStringView());
  aad.append(header, kAadHeaderBytes);
  return aad;
}

}  // namespace

ChunkId ComputeChunkId(std::string_view plaintext, const DataKey* key) {
  crypto::Digest d = key == nullptr
                         ? crypto::Sha256(plaintext)
                         : crypto::HmacSha256(key->id_key(), plaintext);
  return ChunkId::FromBytes(d.data());
}

Status EncodeChunk(const ChunkId& id, std::string_view plaintext,
                   const ChunkEncodeOptions& options, std::string* stored) {
  if (plaintext.size() > kMaxChunkPlainSize) {
    return absl::InvalidArgumentError(StrCat(
        "chunk of ", plaintext.size(), " bytes exceeds ", kMaxChunkPlainSize));
  }
  stored->clear();
  stored->resize(kChunkHeaderSize);
  uint8_t flags = 0;

  // Compress into a scratch buffer; keep it only if it is smaller.
  thread_local std::string compressed;
  compressed.clear();
  CAIRN_RETURN_IF_ERROR(
      ZstdCompress(plaintext, options.zstd_level, &compressed));
  std::string_view body = plaintext;
  if (compressed.size() < plaintext.size()) {
    body = compressed;
    flags |= kChunkCompressed;
  }
  if (options.key != nullptr) flags |= kChunkEncrypted;

  char* h = stored->data();
  std::memcpy(h, kChunkMagic, 4);
  h[kOffVersion] = static_cast<char>(kChunkFormatVersion);
  h[kOffFlags] = static_cast<char>(flags);
  EncodeFixed16(h + 6, 0);
  EncodeFixed32(h + kOffPlainSize, static_cast<uint32_t>(plaintext.size()));

  if (options.key != nullptr) {
    uint8_t tag[crypto::kGcmTagSize];
    CAIRN_RETURN_IF_ERROR(
        crypto::RandomBytes(h + kOffNonce, crypto::kGcmNonceSize));
    std::string nonce(h + kOffNonce, crypto::kGcmNonceSize);
    std::string aad = MakeAad(id, stored->data());
    CAIRN_RETURN_IF_ERROR(crypto::AesGcmEncrypt(options.key->encryption_key(),
                                                nonce, aad, body, stored, tag));
    h = stored->data();  // may have moved
    std::memcpy(h + kOffTag, tag, sizeof(tag));
  } else {
    stored->append(body);
    h = stored->data();
  }
  size_t payload_size = stored->size() - kChunkHeaderSize;
  EncodeFixed32(h + kOffPayloadSize, static_cast<uint32_t>(payload_size));
  EncodeFixed32(h + kOffPayloadCrc,
                crc32c::Value(h + kChunkHeaderSize, payload_size));
  EncodeFixed32(h + kOffHeaderCrc, crc32c::Value(h, kOffHeaderCrc));
  return absl::OkStatus();
}

StatusOr<ChunkHeader> CheckStoredChunk(std::string_view stored) {
  if (stored.size() < kChunkHeaderSize) {
    return absl::DataLossError(StrCat("chunk truncated: ", stored.size(),
                                      " bytes, header needs ",
                                      kChunkHeaderSize));
  }
  const char* h = stored.data();
  if (std::memcmp(h, kChunkMagic, 4) != 0) {
    return absl::DataLossError("chunk has bad magic (not a Cairn chunk)");
  }
  if (DecodeFixed32(h + kOffHeaderCrc) != crc32c::Value(h, kOffHeaderCrc)) {
    return absl::DataLossError("chunk header CRC mismatch");
  }
  ChunkHeader hdr;
  hdr.version = static_cast<uint8_t>(h[kOffVersion]);
  hdr.flags = static_cast<uint8_t>(h[kOffFlags]);
  if (hdr.version != kChunkFormatVersion) {
    return absl::DataLossError(
        StrCat("unsupported chunk format version ", hdr.version));
  }
  if ((hdr.flags & ~(kChunkCompressed | kChunkEncrypted)) != 0) {
    return absl::DataLossError(StrCat("unknown chunk flags ", hdr.flags));
  }
  hdr.plain_size = DecodeFixed32(h + kOffPlainSize);
  hdr.payload_size = DecodeFixed32(h + kOffPayloadSize);
  hdr.payload_crc = DecodeFixed32(h + kOffPayloadCrc);
  std::memcpy(hdr.nonce.data(), h + kOffNonce, hdr.nonce.size());
  std::memcpy(hdr.tag.data(), h + kOffTag, hdr.tag.size());
  if (hdr.plain_size > kMaxChunkPlainSize) {
    return absl::DataLossError("chunk plaintext size exceeds 16 MiB");
  }
  if (stored.size() - kChunkHeaderSize != hdr.payload_size) {
    return absl::DataLossError(StrCat(
        "chunk payload is ", stored.size() - kChunkHeaderSize,
        " bytes, header says ", hdr.payload_size, " (truncated or extended)"));
  }
  if (crc32c::Value(h + kChunkHeaderSize, hdr.payload_size) !=
      hdr.payload_crc) {
    return absl::DataLossError("chunk payload CRC mismatch");
  }
  return hdr;
}

Status DecodeChunk(const ChunkId& id, std::string_view stored,
                   const DataKey* key, std::string* plaintext) {
  CAIRN_ASSIGN_OR_RETURN(ChunkHeader hdr, CheckStoredChunk(stored));
  std::string_view body = stored.substr(kChunkHeaderSize);
  thread_local std::string decrypted;
  if (hdr.flags & kChunkEncrypted) {
    if (key == nullptr) {
      return absl::FailedPreconditionError(
          "chunk is encrypted and no data key was given");
    }
    std::string_view nonce(reinterpret_cast<const char*>(hdr.nonce.data()),
                           hdr.nonce.size());
    std::string aad = MakeAad(id, stored.data());
    CAIRN_RETURN_IF_ERROR(crypto::AesGcmDecrypt(
        key->encryption_key(), nonce, aad, body, hdr.tag.data(), &decrypted));
    body = decrypted;
  }
  if (hdr.flags & kChunkCompressed) {
    CAIRN_RETURN_IF_ERROR(ZstdDecompress(body, hdr.plain_size, plaintext));
  } else {
    if (body.size() != hdr.plain_size) {
      return absl::DataLossError("uncompressed chunk size mismatch");
    }
    plaintext->assign(body);
  }
  const DataKey* id_key = (hdr.flags & kChunkEncrypted) ? key : nullptr;
  if (ComputeChunkId(*plaintext, id_key) != id) {
    plaintext->clear();
    return absl::DataLossError(
        StrCat("chunk content does not match its id ", id.ToHex()));
  }
  return absl::OkStatus();
}

}  // namespace cairn
