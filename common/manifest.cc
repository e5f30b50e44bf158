// Implements docs/formats/manifest.md.
#include "common/manifest.h"

#include <cstring>

#include "common/coding.h"
#include "common/crypto.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'M', 'F', '1'};
constexpr uint16_t kVersion = 1;
constexpr uint16_t kFlagSigned = 1;
constexpr uint8_t kEntryZeroRun = 0x00;
constexpr uint8_t kEntryChunk = 0x01;
constexpr size_t kMaxString = 4096;
constexpr size_t kMaxConsolidated = 1 << 16;

}  // namespace

Status ValidateChunkSize(uint64_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize ||
      (chunk_size & (chunk_size - 1)) != 0) {
    return absl::InvalidArgumentError(
        StrCat("chunk size must be a power of two from 64 KiB to 16 MiB, got ",
               chunk_size));
  }
  return absl::OkStatus();
}

Status ValidateBackupId(std::string_view id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') {
    return absl::InvalidArgumentError(StrCat(
        "invalid backup id '", id.substr(0, 140),
        "': 1-128 characters from [A-Za-z0-9._-], not starting with '.'"));
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          StrCat("invalid backup id '", id.substr(0, 140),
                 "': only [A-Za-z0-9._-] are allowed"));
    }
  }
  return absl::OkStatus();
}

std::string_view BackupKindName(BackupKind kind) {
  switch (kind) {
    case BackupKind::kFull:
      return "full";
    case BackupKind::kIncremental:
      return "incremental";
    case BackupKind::kSyntheticFull:
      return "synthetic-full";
    case BackupKind::kCustomized:
      return "customized";
  }
  return "unknown";
}

uint64_t Manifest::ChunkCount() const {
  if (chunk_size == 0) return 0;
  return (image_size + chunk_size - 1) / chunk_size;
}

uint32_t Manifest::ChunkLength(uint64_t index) const {
  uint64_t start = index * chunk_size;
  uint64_t end = std::min<uint64_t>(start + chunk_size, image_size);
  return static_cast<uint32_t>(end - start);
}

StatusOr<std::string> EncodeManifest(const Manifest& m, const DataKey* key) {
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(m.backup_id));
  CAIRN_RETURN_IF_ERROR(ValidateChunkSize(m.chunk_size));
  if (m.chunks.size() != m.ChunkCount()) {
    return absl::InvalidArgumentError(
        StrCat("manifest ", m.backup_id, " lists ", m.chunks.size(),
               " chunks; image size needs ", m.ChunkCount()));
  }
  if (key != nullptr && m.key_fingerprint != key->fingerprint()) {
    return absl::InvalidArgumentError(
        "manifest key fingerprint does not match the signing key");
  }
  std::string out;
  out.append(kMagic, sizeof(kMagic));
  PutFixed16(&out, kVersion);
  PutFixed16(&out, key != nullptr ? kFlagSigned : 0);
  PutLengthPrefixed(&out, m.backup_id);
  PutLengthPrefixed(&out, m.source);
  out.push_back(static_cast<char>(m.kind));
  PutLengthPrefixed(&out, m.parent_id);
  PutFixed64(&out, static_cast<uint64_t>(m.created_unix_us));
  PutFixed64(&out, m.image_size);
  PutFixed32(&out, m.chunk_size);
  PutLengthPrefixed(&out, m.key_fingerprint);
  PutLengthPrefixed(&out, m.profile_ref);
  PutLengthPrefixed(&out, m.source_state);
  PutVarint64(&out, m.consolidated_from.size());
  for (const auto& id : m.consolidated_from) PutLengthPrefixed(&out, id);

  // Chunk table: runs of zero chunks collapse into one entry.
  PutVarint64(&out, m.chunks.size());
  for (size_t i = 0; i < m.chunks.size();) {
    if (m.chunks[i].IsZero()) {
      size_t j = i;
      while (j < m.chunks.size() && m.chunks[j].IsZero()) ++j;
      out.push_back(static_cast<char>(kEntryZeroRun));
      PutVarint64(&out, j - i);
      i = j;
    } else {
      out.push_back(static_cast<char>(kEntryChunk));
      out.append(m.chunks[i].AsStringView());
      ++i;
    }
  }
  if (key != nullptr) {
    out.append(
        crypto::AsStringView(crypto::HmacSha256(key->manifest_key(), out)));
  }
  out.append(crypto::AsStringView(crypto::Sha256(out)));
  return out;
}

StatusOr<Manifest> DecodeManifest(std::string_view data, std::string_view name,
                                  const DataKey* key) {
  auto damaged = [&](std::string_view what) {
    return absl::DataLossError(StrCat("manifest ", name, ": ", what));
  };
  constexpr size_t kChecksum = crypto::kSha256Size;
  if (data.size() < sizeof(kMagic) + 4 + kChecksum) return damaged("truncated");
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return damaged("bad magic (not a Cairn manifest)");
  }
  std::string_view body = data.substr(0, data.size() - kChecksum);
  if (!crypto::ConstantTimeEquals(crypto::AsStringView(crypto::Sha256(body)),
                                  data.substr(body.size()))) {
    return damaged("checksum mismatch (truncated or corrupted)");
  }
  Decoder d(body.substr(sizeof(kMagic)));
  uint16_t version = 0, flags = 0;
  d.GetFixed16(&version);
  d.GetFixed16(&flags);
  if (version != kVersion) {
    return damaged(StrCat("unsupported format version ", version));
  }
  bool is_signed = (flags & kFlagSigned) != 0;
  std::string_view signed_part = body;
  std::string_view signature;
  if (is_signed) {
    if (body.size() < sizeof(kMagic) + 4 + crypto::kSha256Size) {
      return damaged("truncated signature");
    }
    signed_part = body.substr(0, body.size() - crypto::kSha256Size);
    signature = body.substr(signed_part.size());
    d = Decoder(signed_part.substr(sizeof(kMagic) + 4));
  }

  Manifest m;
  std::string_view s;
  uint8_t kind = 0;
  uint64_t created = 0, count = 0, n_consolidated = 0;
  d.GetLengthPrefixed(&s, kMaxString);
  m.backup_id = std::string(s);
  d.GetLengthPrefixed(&s, kMaxString);
  m.source = std::string(s);
  d.GetFixed8(&kind);
  d.GetLengthPrefixed(&s, kMaxString);
  m.parent_id = std::string(s);
  d.GetFixed64(&created);
  m.created_unix_us = static_cast<int64_t>(created);
  d.GetFixed64(&m.image_size);
  d.GetFixed32(&m.chunk_size);
  d.GetLengthPrefixed(&s, kMaxString);
  m.key_fingerprint = std::string(s);
  d.GetLengthPrefixed(&s, kMaxString);
  m.profile_ref = std::string(s);
  d.GetLengthPrefixed(&s, kMaxString);
  m.source_state = std::string(s);
  d.GetVarint64(&n_consolidated);
  if (!d.ok()) return damaged("truncated header");
  if (n_consolidated > kMaxConsolidated)
    return damaged("too many consolidated ids");
  for (uint64_t i = 0; i < n_consolidated; ++i) {
    if (!d.GetLengthPrefixed(&s, kMaxString))
      return damaged("truncated header");
    m.consolidated_from.emplace_back(s);
  }
  if (kind > static_cast<uint8_t>(BackupKind::kCustomized)) {
    return damaged(StrCat("unknown backup kind ", kind));
  }
  m.kind = static_cast<BackupKind>(kind);
  if (!ValidateBackupId(m.backup_id).ok()) return damaged("invalid backup id");
  if (!ValidateChunkSize(m.chunk_size).ok())
    return damaged("invalid chunk size");
  if (!m.key_fingerprint.empty() && m.key_fingerprint.size() != 16) {
    return damaged("invalid key fingerprint");
  }
  d.GetVarint64(&count);
  if (!d.ok() || count != m.ChunkCount()) {
    return damaged("chunk count does not match image size");
  }
  // Every entry takes at least 2 bytes, so a huge count cannot allocate more
  // than the input justifies.
  if (count > 0 && d.remaining() < 2) return damaged("truncated chunk table");
  m.chunks.reserve(std::min<uint64_t>(count, d.remaining() * 64));
  while (m.chunks.size() < count) {
    uint8_t tag = 0;
    if (!d.GetFixed8(&tag)) return damaged("truncated chunk table");
    if (tag == kEntryZeroRun) {
      uint64_t run = 0;
      if (!d.GetVarint64(&run) || run == 0 || run > count - m.chunks.size()) {
        return damaged("bad zero run in chunk table");
      }
      m.chunks.insert(m.chunks.end(), run, ChunkId::Zero());
    } else if (tag == kEntryChunk) {
      std::string_view raw;
      if (!d.GetBytes(ChunkId::kSize, &raw))
        return damaged("truncated chunk table");
      ChunkId id =
          ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(raw.data()));
      if (id.IsZero()) return damaged("reserved zero id used as a chunk id");
      m.chunks.push_back(id);
    } else {
      return damaged(StrCat("unknown chunk table entry ", tag));
    }
  }
  if (d.remaining() != 0) return damaged("trailing bytes after chunk table");

  if (key != nullptr && m.encrypted()) {
    if (m.key_fingerprint != key->fingerprint()) {
      return absl::FailedPreconditionError(
          StrCat("manifest ", name, " was made with key ",
                 HexEncode(m.key_fingerprint), ", not with the given key ",
                 key->FingerprintHex()));
    }
    if (!is_signed) return damaged("encrypted manifest carries no signature");
    auto expect = crypto::HmacSha256(key->manifest_key(), signed_part);
    if (!crypto::ConstantTimeEquals(crypto::AsStringView(expect), signature)) {
      return damaged("signature does not verify (tampered or wrong key)");
    }
  }
  return m;
}

}  // namespace cairn
