// Encodes and decodes the stored file catalogue:
// docs/formats/file-catalogue.md.
#include "media_agent/catalogue_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>

#include "absl/strings/match.h"
#include "common/coding.h"
#include "common/compression.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "common/utf8.h"

namespace cairn {
namespace {

constexpr std::string_view kMagic = "CAIRNFC1";
constexpr std::string_view kSuffix = ".cfc";
constexpr uint16_t kVersion = 1;
constexpr uint16_t kFlagEncrypted = 1;
constexpr size_t kFingerprintSize = 16;
constexpr size_t kMaxIdSize = 128;
// Header bytes besides the backup id: magic 8, version 2, flags 2, id length
// 1, fingerprint 16, plain size 8, compressed size 8, nonce 12.
constexpr size_t kFixedHeaderSize =
    8 + 2 + 2 + 1 + kFingerprintSize + 8 + 8 + crypto::kGcmNonceSize;
constexpr size_t kCrcSize = 4;
// protobuf cannot serialize or parse a message of 2 GiB or more.
constexpr uint64_t kMaxPlainSize = INT_MAX;
constexpr int kZstdLevel = 3;
constexpr std::string_view kSubKeyInfo = "cairn file catalogue v1";

// Upper bound of a zstd frame of `n` bytes (ZSTD_COMPRESSBOUND, rounded up).
uint64_t CompressBound(uint64_t n) { return n + (n >> 7) + (128 << 10); }

StatusOr<std::string> CatalogueKey(const DataKey& key) {
  return crypto::HkdfSha256(key.encryption_key(), "", kSubKeyInfo,
                            crypto::kAesKeySize);
}

// A catalogue whose `string` fields are not UTF-8 serializes, but never
// parses again: refuse to store it.
Status CheckStringFields(const v1::FileCatalogue& c) {
  for (const auto* list : {&c.filesystems(), &c.skipped()}) {
    for (const auto& fs : *list) {
      for (const std::string* field :
           {&fs.fs_type(), &fs.label(), &fs.uuid(), &fs.error()}) {
        if (!IsValidUtf8(*field)) {
          return absl::InvalidArgumentError(
              StrCat("file catalogue of backup '", c.backup_id(),
                     "': partition ", fs.partition(),
                     " has a type, label, uuid or error that is not UTF-8"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

CatalogueStore::CatalogueStore(std::string repo_root, Env* env)
    : root_(std::move(repo_root)),
      dir_(JoinPath(root_, "catalogues")),
      tmp_dir_(JoinPath(root_, "tmp")),
      env_(env) {}

StatusOr<std::string> CatalogueStore::Path(const std::string& backup_id) const {
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup_id));
  return StrCat(dir_, "/", backup_id, kSuffix);
}

Status CatalogueStore::Save(const v1::FileCatalogue& catalogue,
                            const DataKey* key) {
  const std::string& id = catalogue.backup_id();
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(id));
  CAIRN_RETURN_IF_ERROR(CheckStringFields(catalogue));
  const size_t plain_size = catalogue.ByteSizeLong();
  if (plain_size > kMaxPlainSize) {
    return absl::ResourceExhaustedError(StrCat(
        "file catalogue of backup '", id, "' is ", plain_size,
        " bytes serialized; protobuf cannot store more than ", kMaxPlainSize));
  }
  std::string plain;
  if (!catalogue.SerializeToString(&plain)) {
    return absl::InternalError(
        StrCat("cannot serialize the file catalogue of backup '", id, "'"));
  }
  std::string frame;
  CAIRN_RETURN_IF_ERROR(ZstdCompress(plain, kZstdLevel, &frame));
  plain.clear();
  plain.shrink_to_fit();

  // Header (docs/formats/file-catalogue.md).
  std::string out;
  out.reserve(kFixedHeaderSize + id.size() + frame.size() +
              crypto::kGcmTagSize + kCrcSize);
  out.append(kMagic);
  PutFixed16(&out, kVersion);
  PutFixed16(&out, key != nullptr ? kFlagEncrypted : 0);
  out.push_back(static_cast<char>(id.size()));
  out.append(id);
  if (key != nullptr) {
    out.append(key->fingerprint());
  } else {
    out.append(kFingerprintSize, '\0');
  }
  PutFixed64(&out, plain_size);
  PutFixed64(&out, frame.size());
  std::string nonce(crypto::kGcmNonceSize, '\0');
  if (key != nullptr) {
    CAIRN_RETURN_IF_ERROR(crypto::RandomBytes(nonce.data(), nonce.size()));
  }
  out.append(nonce);

  if (key != nullptr) {
    CAIRN_ASSIGN_OR_RETURN(std::string sub_key, CatalogueKey(*key));
    const std::string header = out;
    uint8_t tag[crypto::kGcmTagSize];
    CAIRN_RETURN_IF_ERROR(
        crypto::AesGcmEncrypt(sub_key, nonce, header, frame, &out, tag));
    out.append(reinterpret_cast<const char*>(tag), sizeof(tag));
  } else {
    out.append(frame);
  }
  PutFixed32(&out, crc32c::Value(out));

  // catalogues/ appears with the first catalogue; make its creation durable
  // before anything is renamed into it.
  CAIRN_ASSIGN_OR_RETURN(bool dir_exists, env_->FileExists(dir_));
  if (!dir_exists) {
    CAIRN_RETURN_IF_ERROR(env_->CreateDir(dir_));
    CAIRN_RETURN_IF_ERROR(env_->SyncDir(root_));
  }
  static std::atomic<uint64_t> counter{0};
  std::string tmp = StrCat(tmp_dir_, "/catalogue.", id, ".", getpid(), ".",
                           counter.fetch_add(1), ".tmp");
  return WriteFileAtomically(env_, out, tmp, path);
}

StatusOr<v1::FileCatalogue> CatalogueStore::Load(const std::string& backup_id,
                                                 const DataKey* key) const {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  auto damaged = [&](std::string_view what) {
    return absl::DataLossError(
        StrCat("file catalogue ", path, " is damaged: ", what));
  };
  auto info = env_->Stat(path);
  if (absl::IsNotFound(info.status())) {
    return absl::NotFoundError(
        StrCat("backup '", backup_id, "' has no file catalogue"));
  }
  CAIRN_RETURN_IF_ERROR(info.status());
  const uint64_t max_file = kFixedHeaderSize + kMaxIdSize +
                            CompressBound(kMaxPlainSize) + crypto::kGcmTagSize +
                            kCrcSize;
  if (info->size > max_file) {
    return damaged(StrCat(info->size, " bytes is larger than any catalogue"));
  }
  std::string data;
  Status read = env_->ReadFileToString(path, &data);
  if (absl::IsNotFound(read)) {
    return absl::NotFoundError(
        StrCat("backup '", backup_id, "' has no file catalogue"));
  }
  CAIRN_RETURN_IF_ERROR(read);

  // Checks that need no key, in the order of the format document.
  if (data.size() < kFixedHeaderSize + 1 + kCrcSize) {
    return damaged(StrCat("only ", data.size(), " bytes"));
  }
  const size_t body_size = data.size() - kCrcSize;
  if (crc32c::Value(data.data(), body_size) !=
      DecodeFixed32(data.data() + body_size)) {
    return damaged("checksum mismatch");
  }
  const std::string_view body(data.data(), body_size);
  if (body.substr(0, kMagic.size()) != kMagic) {
    return damaged("not a Cairn file catalogue (bad magic)");
  }
  Decoder dec(body.substr(kMagic.size()));
  uint16_t version = 0, flags = 0;
  uint8_t id_size = 0;
  std::string_view id, fingerprint, nonce;
  uint64_t plain_size = 0, compressed_size = 0;
  dec.GetFixed16(&version);
  dec.GetFixed16(&flags);
  dec.GetFixed8(&id_size);
  dec.GetBytes(id_size, &id);
  dec.GetBytes(kFingerprintSize, &fingerprint);
  dec.GetFixed64(&plain_size);
  dec.GetFixed64(&compressed_size);
  dec.GetBytes(crypto::kGcmNonceSize, &nonce);
  if (!dec.ok()) return damaged("truncated header");
  if (version != kVersion) {
    return damaged(StrCat("unknown format version ", version));
  }
  if ((flags & ~kFlagEncrypted) != 0) {
    return damaged(StrCat("unknown flags ", flags));
  }
  if (id != backup_id) {
    return damaged(ValidateBackupId(id).ok()
                       ? StrCat("it holds the catalogue of backup '", id, "'")
                       : std::string("malformed backup id in the header"));
  }
  if (plain_size > kMaxPlainSize) {
    return damaged(StrCat("declares ", plain_size,
                          " bytes of catalogue, more than the limit of ",
                          kMaxPlainSize));
  }
  if (compressed_size > CompressBound(plain_size)) {
    return damaged(StrCat("declares ", compressed_size,
                          " compressed bytes for ", plain_size,
                          " bytes of catalogue"));
  }
  const bool encrypted = (flags & kFlagEncrypted) != 0;
  const size_t header_size = kMagic.size() + dec.position();
  const uint64_t expected =
      compressed_size + (encrypted ? crypto::kGcmTagSize : 0);
  if (body_size - header_size != expected) {
    return damaged(StrCat("payload is ", body_size - header_size,
                          " bytes, the header says ", expected));
  }
  const std::string zeros(kFingerprintSize, '\0');
  if (!encrypted &&
      (fingerprint != zeros ||
       nonce != std::string_view(zeros).substr(0, crypto::kGcmNonceSize))) {
    return damaged("an unencrypted catalogue with a key fingerprint or nonce");
  }

  // Key checks.
  if (encrypted && key == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("file catalogue ", path, " is encrypted (key fingerprint ",
               HexEncode(fingerprint), "); its data key is needed to read it"));
  }
  if (!encrypted && key != nullptr) {
    return absl::FailedPreconditionError(
        StrCat("file catalogue ", path, " is not encrypted, but backup '",
               backup_id, "' is read with data key ", key->FingerprintHex(),
               "; refusing an unauthenticated catalogue"));
  }
  std::string frame;
  std::string_view payload = body.substr(header_size, compressed_size);
  if (encrypted) {
    if (fingerprint != key->fingerprint()) {
      return absl::FailedPreconditionError(
          StrCat("file catalogue ", path, " is encrypted with key ",
                 HexEncode(fingerprint), ", not with the given key ",
                 key->FingerprintHex()));
    }
    CAIRN_ASSIGN_OR_RETURN(std::string sub_key, CatalogueKey(*key));
    const auto* tag = reinterpret_cast<const uint8_t*>(
        body.data() + header_size + compressed_size);
    Status s = crypto::AesGcmDecrypt(
        sub_key, nonce, body.substr(0, header_size), payload, tag, &frame);
    if (!s.ok()) return damaged("authentication failed");
    payload = frame;
  }
  std::string plain;
  Status s = ZstdDecompress(payload, plain_size, &plain);
  if (!s.ok()) return damaged(ToStd(s.message()));
  v1::FileCatalogue catalogue;
  if (!catalogue.ParseFromString(plain)) {
    return damaged("the catalogue does not parse");
  }
  if (catalogue.backup_id() != backup_id) {
    return damaged("its content names another backup");
  }
  return catalogue;
}

StatusOr<bool> CatalogueStore::Exists(const std::string& backup_id) const {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  return env_->FileExists(path);
}

Status CatalogueStore::Delete(const std::string& backup_id) {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  Status s = env_->RemoveFile(path);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(
        StrCat("backup '", backup_id, "' has no file catalogue"));
  }
  CAIRN_RETURN_IF_ERROR(s);
  return env_->SyncDir(dir_);
}

StatusOr<std::vector<std::string>> CatalogueStore::List() const {
  auto names = env_->GetChildren(dir_);
  if (absl::IsNotFound(names.status())) return std::vector<std::string>{};
  CAIRN_RETURN_IF_ERROR(names.status());
  std::vector<std::string> ids;
  for (const auto& name : *names) {
    if (!absl::EndsWith(name,
                        absl::string_view(kSuffix.data(), kSuffix.size())))
      continue;
    std::string id = name.substr(0, name.size() - kSuffix.size());
    if (ValidateBackupId(id).ok()) ids.push_back(std::move(id));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace cairn
