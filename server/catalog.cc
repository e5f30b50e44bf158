#include "server/catalog.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <utility>

#include "cairn/v1/catalog.pb.h"
#include "common/coding.h"
#include "common/crypto.h"
#include "common/strings.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"

namespace cairn {
namespace {

// ---- Keys (docs/formats/catalog.md) ----------------------------------------

constexpr std::string_view kSchemaKey = "M/schema";
constexpr std::string_view kNextJobIdKey = "M/next_job_id";
constexpr std::string_view kNextAuditSeqKey = "M/next_audit_seq";
constexpr std::string_view kClientPrefix = "c/";
constexpr std::string_view kMediaAgentPrefix = "m/";
constexpr std::string_view kBackupPrefix = "B/";
constexpr std::string_view kBackupIndexPrefix = "b/";
constexpr std::string_view kJobPrefix = "j/";
constexpr std::string_view kJobStatePrefix = "s/";
constexpr std::string_view kTokenPrefix = "t/";
constexpr std::string_view kAuditPrefix = "a/";
constexpr std::string_view kUserPrefix = "u/";
constexpr std::string_view kProfileBlobPrefix = "P/";
constexpr std::string_view kProfileHistoryPrefix = "p/";
constexpr std::string_view kTemplatePrefix = "T/";
constexpr std::string_view kBuildCachePrefix = "R/";

// Safety bound on chains (a chain longer than this is treated as a loop).
constexpr size_t kMaxChainLength = 100000;

void PutBigEndian64(std::string* dst, uint64_t v) {
  for (int i = 7; i >= 0; --i) dst->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetBigEndian64(std::string_view p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string ClientKey(std::string_view id) { return StrCat(kClientPrefix, id); }
std::string MediaAgentKey(std::string_view id) {
  return StrCat(kMediaAgentPrefix, id);
}
std::string BackupKey(std::string_view id) { return StrCat(kBackupPrefix, id); }
std::string BackupIndexPrefix(std::string_view client_id) {
  return StrCat(kBackupIndexPrefix, client_id, "/");
}
std::string BackupIndexKey(std::string_view client_id, int64_t created_us,
                           std::string_view backup_id) {
  std::string key = BackupIndexPrefix(client_id);
  PutBigEndian64(&key, static_cast<uint64_t>(created_us));
  key.push_back('/');
  key.append(backup_id);
  return key;
}
std::string JobKey(uint64_t job_id) {
  std::string key(kJobPrefix);
  PutBigEndian64(&key, job_id);
  return key;
}
std::string JobStatePrefix(JobState state) {
  std::string key(kJobStatePrefix);
  key.push_back(static_cast<char>(state));
  key.push_back('/');
  return key;
}
std::string JobStateKey(JobState state, uint64_t job_id) {
  std::string key = JobStatePrefix(state);
  PutBigEndian64(&key, job_id);
  return key;
}
std::string TokenKey(std::string_view token_hash) {
  return StrCat(kTokenPrefix, token_hash);
}
std::string AuditKey(uint64_t seq) {
  std::string key(kAuditPrefix);
  PutBigEndian64(&key, seq);
  return key;
}
std::string UserKey(std::string_view name) { return StrCat(kUserPrefix, name); }
std::string ProfileBlobKey(std::string_view sha_hex) {
  return StrCat(kProfileBlobPrefix, sha_hex);
}
std::string ProfileHistoryPrefix(std::string_view client_id) {
  return StrCat(kProfileHistoryPrefix, client_id, "/");
}
std::string TemplateKey(std::string_view name) {
  return StrCat(kTemplatePrefix, name);
}
// "R/<parent backup id>/<build key>" -> the customized image's id.
std::string BuildCacheKey(std::string_view parent_id,
                          std::string_view build_key) {
  return StrCat(kBuildCachePrefix, parent_id, "/", build_key);
}
std::string ProfileHistoryKey(std::string_view client_id, int64_t reported_us) {
  std::string key = ProfileHistoryPrefix(client_id);
  PutBigEndian64(&key, static_cast<uint64_t>(reported_us));
  return key;
}

// A printable form of a key for error messages: big-endian numbers in
// decimal, other non-printable bytes as \xNN.
std::string DescribeKey(std::string_view key) {
  auto escape = [](std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
      if (c >= 0x20 && c < 0x7f && c != '\\') {
        out.push_back(static_cast<char>(c));
      } else {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
    }
    return out;
  };
  auto starts = [&](std::string_view p) { return key.starts_with(p); };
  if ((starts(kJobPrefix) || starts(kAuditPrefix)) && key.size() == 10) {
    return StrCat(key.substr(0, 2), GetBigEndian64(key.substr(2)));
  }
  if (starts(kJobStatePrefix) && key.size() == 12 && key[3] == '/') {
    return StrCat("s/", static_cast<int>(static_cast<uint8_t>(key[2])), "/",
                  GetBigEndian64(key.substr(4)));
  }
  if (starts(kBackupIndexPrefix)) {
    size_t slash = key.find('/', 2);
    if (slash != std::string_view::npos && key.size() >= slash + 10 &&
        key[slash + 9] == '/') {
      return StrCat(escape(key.substr(0, slash + 1)),
                    GetBigEndian64(key.substr(slash + 1, 8)), "/",
                    escape(key.substr(slash + 10)));
    }
  }
  return escape(key);
}

// ---- Status conversion -----------------------------------------------------

Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = StrCat(context, ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(msg);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(msg);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kIOError:
      if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
      if (s.IsPathNotFound()) return absl::NotFoundError(msg);
      return absl::UnavailableError(msg);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

Status Damaged(std::string_view key, std::string_view why) {
  return absl::DataLossError(
      StrCat("catalog record ", DescribeKey(key), " is damaged: ", why));
}

// ---- Enum conversion -------------------------------------------------------

v1::CatalogRole ToProto(Role r) { return static_cast<v1::CatalogRole>(r); }
bool FromProto(v1::CatalogRole r, Role* out) {
  if (r < v1::CATALOG_ROLE_ADMIN || r > v1::CATALOG_ROLE_SYSTEM) return false;
  *out = static_cast<Role>(r);
  return true;
}

v1::BackupRecord::Kind ToProto(BackupKind k) {
  switch (k) {
    case BackupKind::kFull:
      return v1::BackupRecord::KIND_FULL;
    case BackupKind::kIncremental:
      return v1::BackupRecord::KIND_INCREMENTAL;
    case BackupKind::kSyntheticFull:
      return v1::BackupRecord::KIND_SYNTHETIC_FULL;
    case BackupKind::kCustomized:
      return v1::BackupRecord::KIND_CUSTOMIZED;
  }
  return v1::BackupRecord::KIND_UNSPECIFIED;
}
bool FromProto(v1::BackupRecord::Kind k, BackupKind* out) {
  switch (k) {
    case v1::BackupRecord::KIND_FULL:
      *out = BackupKind::kFull;
      return true;
    case v1::BackupRecord::KIND_INCREMENTAL:
      *out = BackupKind::kIncremental;
      return true;
    case v1::BackupRecord::KIND_SYNTHETIC_FULL:
      *out = BackupKind::kSyntheticFull;
      return true;
    case v1::BackupRecord::KIND_CUSTOMIZED:
      *out = BackupKind::kCustomized;
      return true;
    default:
      return false;
  }
}

// BackupStatus, JobKind and JobState share their numeric values with the
// proto enums (1..n); 0 is "unspecified" and never valid on disk.
template <typename Proto, typename Domain>
bool EnumFromProto(Proto p, int max, Domain* out) {
  int v = static_cast<int>(p);
  if (v < 1 || v > max) return false;
  *out = static_cast<Domain>(v);
  return true;
}

bool ValidState(JobState s) {
  int v = static_cast<int>(s);
  return v >= 1 && v <= 5;
}

// ---- Record conversion -----------------------------------------------------

v1::ClientRecord ToProto(const Client& c) {
  v1::ClientRecord r;
  r.set_client_id(c.client_id);
  r.set_display_name(c.display_name);
  r.set_fleet(c.fleet);
  r.set_cert_fingerprint(c.cert_fingerprint);
  r.set_enrolled_unix_us(c.enrolled_us);
  r.set_last_seen_unix_us(c.last_seen_us);
  r.set_revoked(c.revoked);
  r.set_revoked_unix_us(c.revoked_us);
  r.set_revoked_reason(c.revoked_reason);
  return r;
}
Status FromProto(const std::string& key, const v1::ClientRecord& r, Client* c) {
  if (key != ClientKey(r.client_id())) {
    return Damaged(key, "client id does not match the key");
  }
  c->client_id = r.client_id();
  c->display_name = r.display_name();
  c->fleet = r.fleet();
  c->cert_fingerprint = r.cert_fingerprint();
  c->enrolled_us = r.enrolled_unix_us();
  c->last_seen_us = r.last_seen_unix_us();
  c->revoked = r.revoked();
  c->revoked_us = r.revoked_unix_us();
  c->revoked_reason = r.revoked_reason();
  return absl::OkStatus();
}

v1::MediaAgentRecord ToProto(const MediaAgent& m) {
  v1::MediaAgentRecord r;
  r.set_media_agent_id(m.media_agent_id);
  r.set_address(m.address);
  r.set_cert_fingerprint(m.cert_fingerprint);
  r.set_cert_pem(m.cert_pem);
  r.set_capacity_bytes(m.capacity_bytes);
  r.set_used_bytes(m.used_bytes);
  r.set_registered_unix_us(m.registered_us);
  r.set_last_seen_unix_us(m.last_seen_us);
  r.set_revoked(m.revoked);
  r.set_revoked_unix_us(m.revoked_us);
  r.set_revoked_reason(m.revoked_reason);
  return r;
}
Status FromProto(const std::string& key, const v1::MediaAgentRecord& r,
                 MediaAgent* m) {
  if (key != MediaAgentKey(r.media_agent_id())) {
    return Damaged(key, "media agent id does not match the key");
  }
  m->media_agent_id = r.media_agent_id();
  m->address = r.address();
  m->cert_fingerprint = r.cert_fingerprint();
  m->cert_pem = r.cert_pem();
  m->capacity_bytes = r.capacity_bytes();
  m->used_bytes = r.used_bytes();
  m->registered_us = r.registered_unix_us();
  m->last_seen_us = r.last_seen_unix_us();
  m->revoked = r.revoked();
  m->revoked_us = r.revoked_unix_us();
  m->revoked_reason = r.revoked_reason();
  return absl::OkStatus();
}

v1::BackupRecord ToProto(const BackupEntry& b) {
  v1::BackupRecord r;
  r.set_backup_id(b.backup_id);
  r.set_client_id(b.client_id);
  r.set_media_agent_id(b.media_agent_id);
  r.set_kind(ToProto(b.kind));
  r.set_parent_id(b.parent_id);
  for (const auto& id : b.consolidated_from) r.add_consolidated_from(id);
  r.set_manifest_ref(b.manifest_ref);
  r.set_created_unix_us(b.created_us);
  r.set_committed_unix_us(b.committed_us);
  r.set_image_size(b.image_size);
  r.set_stored_bytes(b.stored_bytes);
  r.set_chunk_count(b.chunk_count);
  r.set_profile_ref(b.profile_ref);
  r.set_encrypted(b.encrypted);
  r.set_build_key(b.build_key);
  r.set_status(static_cast<v1::BackupRecord::Status>(b.status));
  r.set_job_id(b.job_id);
  return r;
}
Status FromProto(const std::string& key, const v1::BackupRecord& r,
                 BackupEntry* b) {
  if (key != BackupKey(r.backup_id())) {
    return Damaged(key, "backup id does not match the key");
  }
  if (!FromProto(r.kind(), &b->kind)) {
    return Damaged(key,
                   StrCat("unknown backup kind ", static_cast<int>(r.kind())));
  }
  if (!EnumFromProto(r.status(), 3, &b->status)) {
    return Damaged(
        key, StrCat("unknown backup status ", static_cast<int>(r.status())));
  }
  if (r.created_unix_us() < 0) return Damaged(key, "negative creation time");
  b->backup_id = r.backup_id();
  b->client_id = r.client_id();
  b->media_agent_id = r.media_agent_id();
  b->parent_id = r.parent_id();
  b->consolidated_from.assign(r.consolidated_from().begin(),
                              r.consolidated_from().end());
  b->manifest_ref = r.manifest_ref();
  b->created_us = r.created_unix_us();
  b->committed_us = r.committed_unix_us();
  b->image_size = r.image_size();
  b->stored_bytes = r.stored_bytes();
  b->chunk_count = r.chunk_count();
  b->profile_ref = r.profile_ref();
  b->encrypted = r.encrypted();
  b->build_key = r.build_key();
  b->job_id = r.job_id();
  return absl::OkStatus();
}

v1::JobRecord ToProto(const Job& j) {
  v1::JobRecord r;
  r.set_job_id(j.job_id);
  r.set_kind(static_cast<v1::JobRecord::Kind>(j.kind));
  r.set_state(static_cast<v1::JobRecord::State>(j.state));
  r.set_client_id(j.client_id);
  r.set_media_agent_id(j.media_agent_id);
  r.set_backup_id(j.backup_id);
  r.set_incremental(j.incremental);
  r.set_resume(j.resume);
  r.set_no_verify(!j.verify);
  r.set_reboot(j.reboot);
  r.set_target(j.target);
  r.set_requested_by(j.requested_by);
  r.set_created_unix_us(j.created_us);
  r.set_started_unix_us(j.started_us);
  r.set_finished_unix_us(j.finished_us);
  r.set_done_bytes(j.progress.done_bytes);
  r.set_total_bytes(j.progress.total_bytes);
  r.set_bytes_per_second(j.progress.bytes_per_second);
  r.set_error(j.error);
  r.set_phase(j.progress.phase);
  r.set_result_backup_id(j.result_backup_id);
  if (j.kind == JobKind::kFileRestore) {
    r.set_source_path(j.source_path);
    if (j.partition) r.set_partition(*j.partition);
  }
  return r;
}
Status FromProto(const std::string& key, const v1::JobRecord& r, Job* j) {
  if (key != JobKey(r.job_id()) || r.job_id() == 0) {
    return Damaged(key, "job id does not match the key");
  }
  if (!EnumFromProto(r.kind(), 4, &j->kind)) {
    return Damaged(key,
                   StrCat("unknown job kind ", static_cast<int>(r.kind())));
  }
  if (!EnumFromProto(r.state(), 5, &j->state)) {
    return Damaged(key,
                   StrCat("unknown job state ", static_cast<int>(r.state())));
  }
  j->job_id = r.job_id();
  j->client_id = r.client_id();
  j->media_agent_id = r.media_agent_id();
  j->backup_id = r.backup_id();
  j->incremental = r.incremental();
  j->resume = r.resume();
  j->verify = !r.no_verify();
  j->reboot = r.reboot();
  j->target = r.target();
  j->requested_by = r.requested_by();
  j->created_us = r.created_unix_us();
  j->started_us = r.started_unix_us();
  j->finished_us = r.finished_unix_us();
  j->progress.done_bytes = r.done_bytes();
  j->progress.total_bytes = r.total_bytes();
  j->progress.bytes_per_second = r.bytes_per_second();
  j->error = r.error();
  j->progress.phase = r.phase();
  j->result_backup_id = r.result_backup_id();
  j->source_path.clear();
  j->partition.reset();
  if (j->kind == JobKind::kFileRestore) {
    j->source_path = r.source_path();
    if (r.has_partition()) j->partition = r.partition();
    if (j->source_path.empty()) {
      return Damaged(key, "file-restore job without a source path");
    }
  }
  return absl::OkStatus();
}

v1::EnrollmentTokenRecord ToProto(const EnrollmentToken& t) {
  v1::EnrollmentTokenRecord r;
  r.set_token_hash(t.token_hash);
  r.set_role(ToProto(t.role));
  r.set_created_by(t.created_by);
  r.set_created_unix_us(t.created_us);
  r.set_expires_unix_us(t.expires_us);
  r.set_used(t.used);
  r.set_used_by(t.used_by);
  r.set_used_unix_us(t.used_us);
  return r;
}
Status FromProto(const std::string& key, const v1::EnrollmentTokenRecord& r,
                 EnrollmentToken* t) {
  if (key != TokenKey(r.token_hash())) {
    return Damaged(key, "token hash does not match the key");
  }
  if (!FromProto(r.role(), &t->role)) {
    return Damaged(key, StrCat("unknown role ", static_cast<int>(r.role())));
  }
  t->token_hash = r.token_hash();
  t->created_by = r.created_by();
  t->created_us = r.created_unix_us();
  t->expires_us = r.expires_unix_us();
  t->used = r.used();
  t->used_by = r.used_by();
  t->used_us = r.used_unix_us();
  return absl::OkStatus();
}

v1::AuditRecord ToProto(const AuditEntry& a) {
  v1::AuditRecord r;
  r.set_seq(a.seq);
  r.set_time_unix_us(a.time_us);
  r.set_actor(a.actor);
  r.set_role(ToProto(a.role));
  r.set_action(a.action);
  r.set_target(a.target);
  r.set_result(a.result);
  r.set_details(a.details);
  return r;
}
Status FromProto(const std::string& key, const v1::AuditRecord& r,
                 AuditEntry* a) {
  if (key != AuditKey(r.seq()) || r.seq() == 0) {
    return Damaged(key, "sequence number does not match the key");
  }
  if (!FromProto(r.role(), &a->role)) {
    return Damaged(key, StrCat("unknown role ", static_cast<int>(r.role())));
  }
  a->seq = r.seq();
  a->time_us = r.time_unix_us();
  a->actor = r.actor();
  a->action = r.action();
  a->target = r.target();
  a->result = r.result();
  a->details = r.details();
  return absl::OkStatus();
}

v1::UserRecord ToProto(const User& u) {
  v1::UserRecord r;
  r.set_name(u.name);
  r.set_role(ToProto(u.role));
  r.set_cert_fingerprint(u.cert_fingerprint);
  r.set_created_unix_us(u.created_us);
  return r;
}
Status FromProto(const std::string& key, const v1::UserRecord& r, User* u) {
  if (key != UserKey(r.name())) {
    return Damaged(key, "user name does not match the key");
  }
  if (!FromProto(r.role(), &u->role)) {
    return Damaged(key, StrCat("unknown role ", static_cast<int>(r.role())));
  }
  u->name = r.name();
  u->cert_fingerprint = r.cert_fingerprint();
  u->created_us = r.created_unix_us();
  return absl::OkStatus();
}

v1::ProfileBlobRecord ToProto(const ProfileBlob& b) {
  v1::ProfileBlobRecord r;
  r.set_profile_zstd(b.profile_zstd);
  r.set_raw_size(b.raw_size);
  r.set_first_seen_unix_us(b.first_seen_us);
  return r;
}
Status FromProto(const std::string& key, const v1::ProfileBlobRecord& r,
                 ProfileBlob* b) {
  b->sha256_hex = key.substr(kProfileBlobPrefix.size());
  b->profile_zstd = r.profile_zstd();
  b->raw_size = r.raw_size();
  b->first_seen_us = r.first_seen_unix_us();
  return absl::OkStatus();
}
v1::ProfileHistoryRecord ToProto(const ProfileHistoryEntry& e) {
  v1::ProfileHistoryRecord r;
  r.set_client_id(e.client_id);
  r.set_reported_unix_us(e.reported_us);
  r.set_profile_sha256(e.profile_sha256);
  return r;
}
Status FromProto(const std::string& key, const v1::ProfileHistoryRecord& r,
                 ProfileHistoryEntry* e) {
  if (key != ProfileHistoryKey(r.client_id(), r.reported_unix_us())) {
    return Damaged(key, "profile history entry does not match the key");
  }
  e->client_id = r.client_id();
  e->reported_us = r.reported_unix_us();
  e->profile_sha256 = r.profile_sha256();
  return absl::OkStatus();
}

v1::BootTemplateRecord ToProto(const BootTemplate& t) {
  v1::BootTemplateRecord r;
  r.set_name(t.name);
  r.set_image_id(t.image_id);
  r.set_description(t.description);
  r.set_kernel_version(t.kernel_version);
  r.set_os_name(t.os_name);
  r.set_profile_sha256(t.profile_sha256);
  r.set_image_size(t.image_size);
  r.set_created_unix_us(t.created_us);
  r.set_created_by(t.created_by);
  return r;
}
Status FromProto(const std::string& key, const v1::BootTemplateRecord& r,
                 BootTemplate* t) {
  if (key != TemplateKey(r.name())) {
    return Damaged(key, "template name does not match the key");
  }
  t->name = r.name();
  t->image_id = r.image_id();
  t->description = r.description();
  t->kernel_version = r.kernel_version();
  t->os_name = r.os_name();
  t->profile_sha256 = r.profile_sha256();
  t->image_size = r.image_size();
  t->created_us = r.created_unix_us();
  t->created_by = r.created_by();
  return absl::OkStatus();
}

// Domain type -> its protobuf record.
template <typename T>
struct RecordOf;
template <>
struct RecordOf<Client> {
  using type = v1::ClientRecord;
};
template <>
struct RecordOf<MediaAgent> {
  using type = v1::MediaAgentRecord;
};
template <>
struct RecordOf<BackupEntry> {
  using type = v1::BackupRecord;
};
template <>
struct RecordOf<Job> {
  using type = v1::JobRecord;
};
template <>
struct RecordOf<EnrollmentToken> {
  using type = v1::EnrollmentTokenRecord;
};
template <>
struct RecordOf<AuditEntry> {
  using type = v1::AuditRecord;
};
template <>
struct RecordOf<User> {
  using type = v1::UserRecord;
};
template <>
struct RecordOf<ProfileBlob> {
  using type = v1::ProfileBlobRecord;
};
template <>
struct RecordOf<ProfileHistoryEntry> {
  using type = v1::ProfileHistoryRecord;
};
template <>
struct RecordOf<BootTemplate> {
  using type = v1::BootTemplateRecord;
};

template <typename T>
Status DecodeValue(const std::string& key, std::string_view value, T* out) {
  typename RecordOf<T>::type record;
  if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return Damaged(key, "value does not parse");
  }
  return FromProto(key, record, out);
}

// ---- Reads -----------------------------------------------------------------

// Releases a snapshot when it goes out of scope.
class ScopedSnapshot {
 public:
  explicit ScopedSnapshot(rocksdb::DB* db)
      : db_(db), snap_(db->GetSnapshot()) {}
  ~ScopedSnapshot() { db_->ReleaseSnapshot(snap_); }
  ScopedSnapshot(const ScopedSnapshot&) = delete;
  ScopedSnapshot& operator=(const ScopedSnapshot&) = delete;
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
};

rocksdb::ReadOptions ReadAt(const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  ro.verify_checksums = true;
  return ro;
}

// Reads and decodes `key`. NotFound says "no <what>" (the caller's words,
// naming the id).
template <typename T>
Status ReadRecord(rocksdb::DB* db, const rocksdb::Snapshot* snapshot,
                  const std::string& key, std::string_view what, T* out) {
  std::string value;
  rocksdb::Status s = db->Get(ReadAt(snapshot), key, &value);
  if (s.IsNotFound()) return absl::NotFoundError(StrCat("no ", what));
  CAIRN_RETURN_IF_ERROR(
      FromRocks(s, StrCat("reading catalog key ", DescribeKey(key))));
  return DecodeValue(key, value, out);
}

// Reads the record an index entry `index_key` points at. A missing record
// means the index is damaged: DataLoss naming both keys.
template <typename T>
Status ReadIndexed(rocksdb::DB* db, const rocksdb::Snapshot* snapshot,
                   const std::string& index_key, const std::string& key,
                   T* out) {
  Status s = ReadRecord(db, snapshot, key, DescribeKey(key), out);
  if (absl::IsNotFound(s)) {
    return Damaged(index_key, StrCat("index entry names ", DescribeKey(key),
                                     ", which does not exist"));
  }
  return s;
}

// Like ReadRecord, but absence is `*found = false` rather than an error.
template <typename T>
Status MaybeReadRecord(rocksdb::DB* db, const std::string& key, T* out,
                       bool* found) {
  std::string value;
  rocksdb::Status s = db->Get(ReadAt(nullptr), key, &value);
  *found = !s.IsNotFound();
  if (!*found) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(
      FromRocks(s, StrCat("reading catalog key ", DescribeKey(key))));
  return DecodeValue(key, value, out);
}

// Calls fn(key, value) for every key starting with `prefix`, ascending, until
// fn returns false or an error.
template <typename Fn>
Status ScanPrefix(rocksdb::DB* db, const rocksdb::Snapshot* snapshot,
                  std::string_view prefix, std::string_view start, Fn fn) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ReadAt(snapshot)));
  for (it->Seek(start.empty() ? prefix : start); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    std::string_view key(k.data(), k.size());
    if (!key.starts_with(prefix)) break;
    rocksdb::Slice v = it->value();
    StatusOr<bool> more =
        fn(std::string(key), std::string_view(v.data(), v.size()));
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  return FromRocks(it->status(),
                   StrCat("scanning catalog prefix ", DescribeKey(prefix)));
}

// Lists every record under `prefix`, ascending by key.
template <typename T>
StatusOr<std::vector<T>> ListAll(rocksdb::DB* db, std::string_view prefix) {
  std::vector<T> out;
  CAIRN_RETURN_IF_ERROR(ScanPrefix(
      db, nullptr, prefix, {},
      [&](const std::string& key, std::string_view value) -> StatusOr<bool> {
        T item;
        CAIRN_RETURN_IF_ERROR(DecodeValue(key, value, &item));
        out.push_back(std::move(item));
        return true;
      }));
  return out;
}

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status CheckHumanRole(Role role) {
  if (role == Role::kAdmin || role == Role::kOperator ||
      role == Role::kHelpdesk || role == Role::kAuditor) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      StrCat("role '", RoleName(role),
             "' cannot be given to a user: use admin, operator, helpdesk or "
             "auditor"));
}

std::string JobWhat(uint64_t job_id) { return StrCat("job ", job_id); }

// The two kinds of enrolled machine, clients (agents) and media agents, are
// enrolled, read and revoked alike; this is what differs.
template <typename T>
struct EnrolledMachine;
template <>
struct EnrolledMachine<Client> {
  static constexpr std::string_view kNoun = "client";
  static constexpr Role kRole = Role::kAgent;
  static const std::string& Id(const Client& c) { return c.client_id; }
  static std::string Key(std::string_view id) { return ClientKey(id); }
  static void SetEnrolled(Client* c, int64_t now) { c->enrolled_us = now; }
};
template <>
struct EnrolledMachine<MediaAgent> {
  static constexpr std::string_view kNoun = "media agent";
  static constexpr Role kRole = Role::kMedia;
  static const std::string& Id(const MediaAgent& m) { return m.media_agent_id; }
  static std::string Key(std::string_view id) { return MediaAgentKey(id); }
  static void SetEnrolled(MediaAgent* m, int64_t now) {
    m->registered_us = now;
  }
};

}  // namespace

// ---- Batch -----------------------------------------------------------------

// One atomic change: a WriteBatch plus the counter values it allocates. The
// counters are written into the batch on commit and copied to the Catalog only
// once the write succeeded.
class Catalog::Batch {
 public:
  explicit Batch(const Catalog& catalog)
      : next_job_id(catalog.next_job_id_),
        next_audit_seq(catalog.next_audit_seq_) {}

  template <typename T>
  void Put(const std::string& key, const T& item) {
    std::string value;
    ToProto(item).SerializeToString(&value);
    Note(wb.Put(key, value), key);
  }
  void PutRaw(const std::string& key, std::string_view value) {
    Note(wb.Put(key, rocksdb::Slice(value.data(), value.size())), key);
  }
  void Delete(const std::string& key) { Note(wb.Delete(key), key); }

  rocksdb::WriteBatch wb;
  uint64_t next_job_id;
  uint64_t next_audit_seq;
  Status error;

 private:
  void Note(const rocksdb::Status& s, const std::string& key) {
    if (!s.ok() && error.ok()) {
      error = FromRocks(s, StrCat("staging catalog key ", DescribeKey(key)));
    }
  }
};

// ---- Open / Close ----------------------------------------------------------

Catalog::Catalog(std::unique_ptr<rocksdb::DB> db, CatalogOptions options)
    : db_(std::move(db)), options_(std::move(options)) {}

Catalog::~Catalog() { (void)Close(); }

StatusOr<std::unique_ptr<Catalog>> Catalog::Open(const std::string& dir,
                                                 CatalogOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return ErrnoToStatus(ec.value(), "creating catalog directory", dir);
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.paranoid_checks = true;
  opts.keep_log_file_num = 4;
  opts.max_manifest_file_size = 64 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &raw);
  if (!s.ok()) {
    // Another process ("While lock file: <dir>/LOCK: ...") or this one
    // ("lock hold by current process ... <dir>/LOCK: ...") has it open.
    if (s.IsIOError() && s.ToString().find("/LOCK:") != std::string::npos) {
      return absl::FailedPreconditionError(
          StrCat("catalog ", dir, " is in use by another process (",
                 s.ToString(), ")"));
    }
    return FromRocks(s, StrCat("opening catalog ", dir));
  }
  std::unique_ptr<Catalog> catalog(
      new Catalog(std::unique_ptr<rocksdb::DB>(raw), std::move(options)));
  CAIRN_RETURN_IF_ERROR(catalog->Initialize());
  CAIRN_RETURN_IF_ERROR(catalog->FailRunningJobs());
  return catalog;
}

Status Catalog::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (db_ == nullptr) return absl::OkStatus();
  rocksdb::FlushOptions fo;
  fo.wait = true;
  Status status = FromRocks(db_->Flush(fo), "flushing the catalog");
  Status closed = FromRocks(db_->Close(), "closing the catalog");
  if (status.ok()) status = closed;
  db_.reset();
  return status;
}

int64_t Catalog::Now() const {
  return options_.clock ? options_.clock() : SystemNowUs();
}

Status Catalog::CheckOpen() const {
  if (db_ == nullptr) {
    return absl::FailedPreconditionError("the catalog is closed");
  }
  return absl::OkStatus();
}

Status Catalog::Initialize() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key(kSchemaKey);
  std::string value;
  rocksdb::Status s = db_->Get(ReadAt(nullptr), key, &value);
  if (s.IsNotFound()) {
    // A new catalog - unless the database already holds something else.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ReadAt(nullptr)));
    it->SeekToFirst();
    CAIRN_RETURN_IF_ERROR(FromRocks(it->status(), "reading the catalog"));
    if (it->Valid()) {
      return absl::DataLossError(
          "this database is not a Cairn catalog: it has records but no "
          "M/schema record");
    }
    v1::MetaRecord meta;
    meta.set_schema_version(kSchemaVersion);
    meta.set_created_unix_us(Now());
    Batch batch(*this);
    batch.PutRaw(key, meta.SerializeAsString());
    return Commit(&batch, /*sync=*/true, /*force_counters=*/true);
  }
  CAIRN_RETURN_IF_ERROR(FromRocks(s, "reading the catalog schema record"));
  v1::MetaRecord meta;
  if (!meta.ParseFromString(value) || meta.schema_version() == 0) {
    return Damaged(key, "schema record does not parse");
  }
  if (meta.schema_version() > kSchemaVersion) {
    return absl::FailedPreconditionError(
        StrCat("catalog schema version ", meta.schema_version(),
               " is newer than this server supports (", kSchemaVersion,
               "); run a newer cairn-server"));
  }
  CAIRN_ASSIGN_OR_RETURN(next_job_id_, ReadCounter(std::string(kNextJobIdKey)));
  CAIRN_ASSIGN_OR_RETURN(next_audit_seq_,
                         ReadCounter(std::string(kNextAuditSeqKey)));

  // A counter and the records it numbers are always written in one batch,
  // so the counter is past the last record. Never reuse an id if it is not.
  auto last_number = [&](std::string_view prefix) -> StatusOr<uint64_t> {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ReadAt(nullptr)));
    std::string bound(prefix);
    bound.append(8, '\xff');
    it->SeekForPrev(bound);
    CAIRN_RETURN_IF_ERROR(FromRocks(it->status(), "reading the catalog"));
    if (!it->Valid() ||
        !it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size())) ||
        it->key().size() != prefix.size() + 8) {
      return 0;
    }
    return GetBigEndian64(
        std::string_view(it->key().data() + prefix.size(), 8));
  };
  CAIRN_ASSIGN_OR_RETURN(uint64_t last_job, last_number(kJobPrefix));
  if (last_job >= next_job_id_) {
    spdlog::warn(
        "catalog: next job id {} is not past the last job {}; using {}",
        next_job_id_, last_job, last_job + 1);
    next_job_id_ = last_job + 1;
  }
  CAIRN_ASSIGN_OR_RETURN(uint64_t last_seq, last_number(kAuditPrefix));
  if (last_seq >= next_audit_seq_) {
    spdlog::warn(
        "catalog: next audit sequence {} is not past the last entry {}; "
        "using {}",
        next_audit_seq_, last_seq, last_seq + 1);
    next_audit_seq_ = last_seq + 1;
  }
  return absl::OkStatus();
}

StatusOr<uint64_t> Catalog::ReadCounter(const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(ReadAt(nullptr), key, &value);
  if (s.IsNotFound()) return Damaged(key, "counter record is missing");
  CAIRN_RETURN_IF_ERROR(FromRocks(s, StrCat("reading catalog key ", key)));
  v1::CounterRecord counter;
  if (!counter.ParseFromString(value) || counter.next() == 0) {
    return Damaged(key, "counter record does not parse");
  }
  return counter.next();
}

Status Catalog::FailRunningJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Job> running;
  CAIRN_RETURN_IF_ERROR(ScanPrefix(
      db_.get(), nullptr, JobStatePrefix(JobState::kRunning), {},
      [&](const std::string& key, std::string_view) -> StatusOr<bool> {
        if (key.size() != 12) return Damaged(key, "malformed index key");
        uint64_t job_id = GetBigEndian64(std::string_view(key).substr(4));
        Job job;
        Status s = ReadIndexed(db_.get(), nullptr, key, JobKey(job_id), &job);
        if (absl::IsDataLoss(s)) {
          // One damaged job must not keep the server from starting. It is
          // left as it is, so every read of it keeps reporting the damage.
          spdlog::error("catalog: cannot fail running job {}: {}", job_id,
                        ToStd(s.message()));
          return true;
        }
        CAIRN_RETURN_IF_ERROR(s);
        running.push_back(std::move(job));
        return true;
      }));
  if (running.empty()) return absl::OkStatus();
  Batch batch(*this);
  int64_t now = Now();
  for (Job& job : running) {
    if (job.state != JobState::kRunning) {
      // The index disagrees with the record; the record wins.
      batch.Delete(JobStateKey(JobState::kRunning, job.job_id));
      batch.PutRaw(JobStateKey(job.state, job.job_id), {});
      continue;
    }
    batch.Delete(JobStateKey(JobState::kRunning, job.job_id));
    job.state = JobState::kFailed;
    job.error = std::string(kServerStoppedError);
    job.finished_us = now;
    batch.Put(JobKey(job.job_id), job);
    batch.PutRaw(JobStateKey(JobState::kFailed, job.job_id), {});
    AuditEntry audit;
    audit.actor = "cairn-server";
    audit.role = Role::kSystem;
    audit.action = "job.fail";
    audit.target = StrCat("job/", job.job_id);
    audit.result = "failed";
    audit.details = std::string(kServerStoppedError);
    CAIRN_RETURN_IF_ERROR(StageAudit(&batch, audit));
    spdlog::warn(
        "catalog: job {} was running when the server stopped; "
        "marked failed",
        job.job_id);
  }
  return Commit(&batch);
}

Status Catalog::Commit(Batch* batch, bool sync, bool force_counters) {
  CAIRN_RETURN_IF_ERROR(batch->error);
  auto put_counter = [&](std::string_view key, uint64_t next) {
    v1::CounterRecord counter;
    counter.set_next(next);
    batch->PutRaw(std::string(key), counter.SerializeAsString());
  };
  if (force_counters || batch->next_job_id != next_job_id_) {
    put_counter(kNextJobIdKey, batch->next_job_id);
  }
  if (force_counters || batch->next_audit_seq != next_audit_seq_) {
    put_counter(kNextAuditSeqKey, batch->next_audit_seq);
  }
  CAIRN_RETURN_IF_ERROR(batch->error);
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  CAIRN_RETURN_IF_ERROR(
      FromRocks(db_->Write(wo, &batch->wb), "writing to the catalog"));
  next_job_id_ = batch->next_job_id;
  next_audit_seq_ = batch->next_audit_seq;
  return absl::OkStatus();
}

Status Catalog::StageAudit(Batch* batch, const AuditEntry& entry,
                           AuditEntry* stored_out) {
  if (entry.action.empty()) {
    return absl::InvalidArgumentError("an audit entry needs an action");
  }
  if (entry.actor.empty()) {
    return absl::InvalidArgumentError("an audit entry needs an actor");
  }
  AuditEntry stored = entry;
  stored.seq = batch->next_audit_seq++;
  if (stored.time_us == 0) stored.time_us = Now();
  batch->Put(AuditKey(stored.seq), stored);
  if (stored_out != nullptr) *stored_out = std::move(stored);
  return absl::OkStatus();
}

// ---- Enrolled machines (clients and media agents) -------------------------

template <typename T>
StatusOr<T> Catalog::GetMachine(std::string_view id) const {
  using M = EnrolledMachine<T>;
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(id, StrCat(M::kNoun, " id")));
  T machine;
  CAIRN_RETURN_IF_ERROR(ReadRecord(db_.get(), nullptr, M::Key(id),
                                   StrCat(M::kNoun, " '", id, "'"), &machine));
  return machine;
}

template <typename T>
Status Catalog::RevokeMachine(std::string_view id, std::string_view reason,
                              const AuditEntry* audit) {
  using M = EnrolledMachine<T>;
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(T machine, GetMachine<T>(id));
  if (machine.revoked) {
    return absl::FailedPreconditionError(
        StrCat(M::kNoun, " '", id, "' is already revoked"));
  }
  machine.revoked = true;
  machine.revoked_us = Now();
  machine.revoked_reason = std::string(reason);
  Batch batch(*this);
  batch.Put(M::Key(M::Id(machine)), machine);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

template <typename T>
StatusOr<T> Catalog::EnrollWithToken(std::string_view token, const T& machine,
                                     const AuditEntry* audit) {
  using M = EnrolledMachine<T>;
  const std::string& id = M::Id(machine);
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(id, StrCat(M::kNoun, " id")));
  CAIRN_ASSIGN_OR_RETURN(EnrollmentToken t, CheckToken(token, M::kRole));
  T existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(
      MaybeReadRecord(db_.get(), M::Key(id), &existing, &found));
  if (found) {
    return absl::AlreadyExistsError(
        StrCat(M::kNoun, " '", id, "' already exists; the token was not used"));
  }
  int64_t now = Now();
  t.used = true;
  t.used_by = id;
  t.used_us = now;
  T stored = machine;
  M::SetEnrolled(&stored, now);
  stored.revoked = false;
  stored.revoked_us = 0;
  stored.revoked_reason.clear();
  Batch batch(*this);
  batch.Put(TokenKey(t.token_hash), t);
  batch.Put(M::Key(id), stored);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  CAIRN_RETURN_IF_ERROR(Commit(&batch));
  return stored;
}

// ---- Clients ---------------------------------------------------------------

Status Catalog::CreateClient(const Client& client, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(client.client_id, "client id"));
  Client existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(MaybeReadRecord(db_.get(), ClientKey(client.client_id),
                                        &existing, &found));
  if (found) {
    return absl::AlreadyExistsError(
        StrCat("client '", client.client_id, "' already exists"));
  }
  Client stored = client;
  if (stored.enrolled_us == 0) stored.enrolled_us = Now();
  Batch batch(*this);
  batch.Put(ClientKey(stored.client_id), stored);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

StatusOr<Client> Catalog::GetClient(std::string_view client_id) const {
  return GetMachine<Client>(client_id);
}

StatusOr<std::vector<Client>> Catalog::ListClients() const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  return ListAll<Client>(db_.get(), kClientPrefix);
}

Status Catalog::TouchClient(std::string_view client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(Client client, GetClient(client_id));
  client.last_seen_us = Now();
  Batch batch(*this);
  batch.Put(ClientKey(client.client_id), client);
  return Commit(&batch, /*sync=*/false);
}

Status Catalog::RevokeClient(std::string_view client_id,
                             std::string_view reason, const AuditEntry* audit) {
  return RevokeMachine<Client>(client_id, reason, audit);
}

// ---- Media agents ----------------------------------------------------------

Status Catalog::PutMediaAgent(const MediaAgent& agent,
                              const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(
      ValidateCatalogId(agent.media_agent_id, "media agent id"));
  MediaAgent existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(MaybeReadRecord(
      db_.get(), MediaAgentKey(agent.media_agent_id), &existing, &found));
  if (found && existing.revoked) {
    return absl::FailedPreconditionError(StrCat("media agent '",
                                                agent.media_agent_id,
                                                "' is revoked; enroll it again "
                                                "under a new id"));
  }
  MediaAgent stored = agent;
  stored.revoked = false;
  stored.revoked_us = 0;
  stored.revoked_reason.clear();
  stored.registered_us = found ? existing.registered_us : Now();
  Batch batch(*this);
  batch.Put(MediaAgentKey(stored.media_agent_id), stored);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

StatusOr<MediaAgent> Catalog::GetMediaAgent(
    std::string_view media_agent_id) const {
  return GetMachine<MediaAgent>(media_agent_id);
}

StatusOr<std::vector<MediaAgent>> Catalog::ListMediaAgents() const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  return ListAll<MediaAgent>(db_.get(), kMediaAgentPrefix);
}

Status Catalog::RevokeMediaAgent(std::string_view media_agent_id,
                                 std::string_view reason,
                                 const AuditEntry* audit) {
  return RevokeMachine<MediaAgent>(media_agent_id, reason, audit);
}

// ---- Enrollment tokens -----------------------------------------------------

StatusOr<IssuedToken> Catalog::CreateToken(Role role, int64_t ttl_us,
                                           std::string_view created_by,
                                           const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  if (role != Role::kAgent && role != Role::kMedia) {
    return absl::InvalidArgumentError(
        StrCat("enrollment tokens are for agents and media agents, not role '",
               RoleName(role), "'"));
  }
  if (ttl_us <= 0) {
    return absl::InvalidArgumentError(
        StrCat("token lifetime must be positive, got ", ttl_us, " us"));
  }
  IssuedToken issued;
  issued.token = HexEncode(crypto::RandomString(32));
  EnrollmentToken& t = issued.record;
  t.token_hash = HexEncode(crypto::AsStringView(crypto::Sha256(issued.token)));
  t.role = role;
  t.created_by = std::string(created_by);
  t.created_us = Now();
  t.expires_us = t.created_us + ttl_us;
  Batch batch(*this);
  batch.Put(TokenKey(t.token_hash), t);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  CAIRN_RETURN_IF_ERROR(Commit(&batch));
  return issued;
}

StatusOr<std::vector<EnrollmentToken>> Catalog::ListTokens() const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  return ListAll<EnrollmentToken>(db_.get(), kTokenPrefix);
}

StatusOr<EnrollmentToken> Catalog::CheckToken(std::string_view token,
                                              Role expected_role) {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  std::string hash = HexEncode(crypto::AsStringView(crypto::Sha256(token)));
  EnrollmentToken t;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(MaybeReadRecord(db_.get(), TokenKey(hash), &t, &found));
  if (!found) {
    return absl::PermissionDeniedError(
        "enrollment token is not valid: ask an administrator for a new one");
  }
  if (t.used) {
    return absl::PermissionDeniedError(
        StrCat("enrollment token was already used (by '", t.used_by,
               "'); a token enrolls one machine only"));
  }
  int64_t now = Now();
  if (now >= t.expires_us) {
    return absl::PermissionDeniedError(
        StrCat("enrollment token expired ", (now - t.expires_us) / 1000000,
               " s ago: ask an administrator for a new one"));
  }
  if (t.role != expected_role) {
    return absl::PermissionDeniedError(StrCat("enrollment token is for role '",
                                              RoleName(t.role), "', not '",
                                              RoleName(expected_role), "'"));
  }
  return t;
}

StatusOr<Client> Catalog::ConsumeToken(std::string_view token,
                                       const Client& client,
                                       const AuditEntry* audit) {
  return EnrollWithToken(token, client, audit);
}

StatusOr<MediaAgent> Catalog::ConsumeMediaToken(std::string_view token,
                                                const MediaAgent& agent,
                                                const AuditEntry* audit) {
  return EnrollWithToken(token, agent, audit);
}

// ---- Backups ---------------------------------------------------------------

Status Catalog::CommitBackup(const BackupEntry& backup, uint64_t job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup.backup_id));
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(backup.client_id, "client id"));
  if (!backup.media_agent_id.empty()) {
    CAIRN_RETURN_IF_ERROR(
        ValidateCatalogId(backup.media_agent_id, "media agent id"));
  }
  if (backup.kind == BackupKind::kIncremental ||
      backup.kind == BackupKind::kCustomized) {
    if (backup.parent_id.empty()) {
      return absl::InvalidArgumentError(StrCat(BackupKindName(backup.kind),
                                               " image '", backup.backup_id,
                                               "' needs a parent"));
    }
    CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup.parent_id));
  } else if (!backup.parent_id.empty()) {
    return absl::InvalidArgumentError(StrCat(BackupKindName(backup.kind),
                                             " backup '", backup.backup_id,
                                             "' cannot have a parent"));
  }
  for (const std::string& id : backup.consolidated_from) {
    CAIRN_RETURN_IF_ERROR(ValidateBackupId(id));
  }
  if (backup.created_us < 0) {
    return absl::InvalidArgumentError(
        StrCat("backup '", backup.backup_id, "' has a negative creation time"));
  }

  CAIRN_ASSIGN_OR_RETURN(Client client, GetClient(backup.client_id));
  if (client.revoked) {
    return absl::FailedPreconditionError(
        StrCat("client '", client.client_id, "' is revoked"));
  }
  BackupEntry existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(MaybeReadRecord(db_.get(), BackupKey(backup.backup_id),
                                        &existing, &found));
  if (found) {
    return absl::AlreadyExistsError(
        StrCat("backup '", backup.backup_id, "' already exists"));
  }

  int64_t now = Now();
  BackupEntry stored = backup;
  if (stored.created_us == 0) stored.created_us = now;
  stored.committed_us = now;
  stored.status = BackupStatus::kAvailable;
  stored.job_id = job_id;

  if (!stored.parent_id.empty()) {
    BackupEntry parent;
    Status s = ReadRecord(db_.get(), nullptr, BackupKey(stored.parent_id),
                          StrCat("parent backup '", stored.parent_id,
                                 "' of backup '", stored.backup_id, "'"),
                          &parent);
    CAIRN_RETURN_IF_ERROR(s);
    if (parent.client_id != stored.client_id) {
      return absl::InvalidArgumentError(
          StrCat("parent backup '", parent.backup_id, "' belongs to client '",
                 parent.client_id, "', not '", stored.client_id, "'"));
    }
    if (parent.created_us > stored.created_us) {
      return absl::InvalidArgumentError(
          StrCat("parent backup '", parent.backup_id,
                 "' is newer than its incremental '", stored.backup_id, "'"));
    }
  }

  Batch batch(*this);
  if (job_id != kNoJob) {
    Job job;
    CAIRN_RETURN_IF_ERROR(
        ReadRecord(db_.get(), nullptr, JobKey(job_id), JobWhat(job_id), &job));
    const bool build = stored.kind == BackupKind::kCustomized;
    if (job.kind != (build ? JobKind::kRestoreBuild : JobKind::kBackup)) {
      return absl::FailedPreconditionError(
          StrCat("job ", job_id, " is a ", JobKindName(job.kind),
                 " job, not a ", build ? "restore-build" : "backup", " job"));
    }
    if (build && job.backup_id != stored.parent_id) {
      return absl::FailedPreconditionError(
          StrCat("job ", job_id, " builds from backup '", job.backup_id,
                 "', not '", stored.parent_id, "'"));
    }
    if (job.state != JobState::kRunning) {
      return absl::FailedPreconditionError(StrCat(
          "job ", job_id, " is ", JobStateName(job.state),
          ", not running; backup '", stored.backup_id, "' was not recorded"));
    }
    if (job.client_id != stored.client_id) {
      return absl::FailedPreconditionError(
          StrCat("job ", job_id, " backs up client '", job.client_id,
                 "', not '", stored.client_id, "'"));
    }
    if (stored.media_agent_id.empty()) {
      stored.media_agent_id = job.media_agent_id;
    }
    batch.Delete(JobStateKey(job.state, job_id));
    job.state = JobState::kSucceeded;
    job.finished_us = now;
    if (build) {
      job.result_backup_id = stored.backup_id;
    } else {
      job.backup_id = stored.backup_id;
    }
    job.progress.phase.clear();
    if (job.progress.total_bytes > 0) {
      job.progress.done_bytes = job.progress.total_bytes;
    }
    job.error.clear();
    batch.Put(JobKey(job_id), job);
    batch.PutRaw(JobStateKey(job.state, job_id), {});
  }
  batch.Put(BackupKey(stored.backup_id), stored);
  batch.PutRaw(
      BackupIndexKey(stored.client_id, stored.created_us, stored.backup_id),
      {});
  if (stored.kind == BackupKind::kCustomized && !stored.build_key.empty()) {
    batch.PutRaw(BuildCacheKey(stored.parent_id, stored.build_key),
                 stored.backup_id);
  }
  return Commit(&batch);
}

StatusOr<BackupEntry> Catalog::GetBackup(std::string_view backup_id) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup_id));
  BackupEntry backup;
  CAIRN_RETURN_IF_ERROR(ReadRecord(db_.get(), nullptr, BackupKey(backup_id),
                                   StrCat("backup '", backup_id, "'"),
                                   &backup));
  return backup;
}

StatusOr<std::vector<BackupEntry>> Catalog::ListBackups(
    std::string_view client_id) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(client_id, "client id"));
  ScopedSnapshot snap(db_.get());
  Client client;
  CAIRN_RETURN_IF_ERROR(ReadRecord(db_.get(), snap.get(), ClientKey(client_id),
                                   StrCat("client '", client_id, "'"),
                                   &client));
  std::string prefix = BackupIndexPrefix(client_id);
  std::vector<BackupEntry> out;
  CAIRN_RETURN_IF_ERROR(ScanPrefix(
      db_.get(), snap.get(), prefix, {},
      [&](const std::string& key, std::string_view) -> StatusOr<bool> {
        if (key.size() < prefix.size() + 10 || key[prefix.size() + 8] != '/') {
          return Damaged(key, "malformed index key");
        }
        std::string backup_id = key.substr(prefix.size() + 9);
        BackupEntry backup;
        CAIRN_RETURN_IF_ERROR(ReadIndexed(db_.get(), snap.get(), key,
                                          BackupKey(backup_id), &backup));
        out.push_back(std::move(backup));
        return true;
      }));
  std::reverse(out.begin(), out.end());
  return out;
}

StatusOr<BackupEntry> Catalog::LatestBackup(std::string_view client_id) const {
  CAIRN_ASSIGN_OR_RETURN(std::vector<BackupEntry> backups,
                         ListBackups(client_id));
  for (BackupEntry& b : backups) {
    if (b.status == BackupStatus::kAvailable) return std::move(b);
  }
  return absl::NotFoundError(
      StrCat("client '", client_id, "' has no available backup"));
}

StatusOr<std::vector<BackupEntry>> Catalog::BackupChain(
    std::string_view backup_id) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup_id));
  ScopedSnapshot snap(db_.get());
  std::vector<BackupEntry> chain;
  std::set<std::string> seen;
  std::string next(backup_id);
  while (!next.empty()) {
    if (!seen.insert(next).second || chain.size() >= kMaxChainLength) {
      return absl::DataLossError(StrCat("the chain of backup '", backup_id,
                                        "' loops at '", next, "'"));
    }
    BackupEntry b;
    Status s = ReadRecord(db_.get(), snap.get(), BackupKey(next),
                          StrCat("backup '", next, "'"), &b);
    if (absl::IsNotFound(s) && !chain.empty()) {
      return absl::DataLossError(
          StrCat("the chain of backup '", backup_id, "' is broken: parent '",
                 next, "' of '", chain.back().backup_id, "' is missing"));
    }
    CAIRN_RETURN_IF_ERROR(s);
    next = b.parent_id;
    chain.push_back(std::move(b));
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

Status Catalog::SetBackupStatus(std::string_view backup_id, BackupStatus status,
                                const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  int s = static_cast<int>(status);
  if (s < 1 || s > 3) {
    return absl::InvalidArgumentError(StrCat("unknown backup status ", s));
  }
  CAIRN_ASSIGN_OR_RETURN(BackupEntry backup, GetBackup(backup_id));
  backup.status = status;
  Batch batch(*this);
  batch.Put(BackupKey(backup.backup_id), backup);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

// ---- Jobs ------------------------------------------------------------------

StatusOr<Job> Catalog::CreateJob(const Job& spec, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  if (spec.kind != JobKind::kBackup && spec.kind != JobKind::kRestore &&
      spec.kind != JobKind::kFileRestore &&
      spec.kind != JobKind::kRestoreBuild) {
    return absl::InvalidArgumentError(
        StrCat("unknown job kind ", static_cast<int>(spec.kind)));
  }
  if (spec.kind == JobKind::kFileRestore) {
    if (spec.source_path.empty() || spec.target.empty()) {
      return absl::InvalidArgumentError(
          "a file-restore job needs a source path and a target path");
    }
  } else if (!spec.source_path.empty() || spec.partition) {
    return absl::InvalidArgumentError(
        "only a file-restore job has a source path and partition");
  }
  CAIRN_ASSIGN_OR_RETURN(Client client, GetClient(spec.client_id));
  if (client.revoked) {
    return absl::FailedPreconditionError(
        StrCat("client '", client.client_id, "' is revoked"));
  }
  if (!spec.media_agent_id.empty()) {
    CAIRN_ASSIGN_OR_RETURN(MediaAgent agent,
                           GetMediaAgent(spec.media_agent_id));
    if (agent.revoked) {
      return absl::FailedPreconditionError(
          StrCat("media agent '", agent.media_agent_id, "' is revoked"));
    }
  }
  if (spec.kind != JobKind::kBackup) {
    if (spec.backup_id.empty()) {
      return absl::InvalidArgumentError(
          StrCat("a ", JobKindName(spec.kind), " job needs a backup id"));
    }
    CAIRN_RETURN_IF_ERROR(GetBackup(spec.backup_id).status());
  } else if (!spec.backup_id.empty()) {
    return absl::InvalidArgumentError(
        "a backup job gets its backup id when the backup commits");
  }

  Batch batch(*this);
  Job job = spec;
  job.job_id = batch.next_job_id++;
  job.state = JobState::kQueued;
  job.created_us = Now();
  job.started_us = 0;
  job.finished_us = 0;
  job.progress = {};
  job.error.clear();
  batch.Put(JobKey(job.job_id), job);
  batch.PutRaw(JobStateKey(job.state, job.job_id), {});
  if (audit != nullptr) {
    AuditEntry entry = *audit;
    if (entry.target.empty()) entry.target = StrCat("job/", job.job_id);
    CAIRN_RETURN_IF_ERROR(StageAudit(&batch, entry));
  }
  CAIRN_RETURN_IF_ERROR(Commit(&batch));
  return job;
}

StatusOr<Job> Catalog::GetJob(uint64_t job_id) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  Job job;
  CAIRN_RETURN_IF_ERROR(
      ReadRecord(db_.get(), nullptr, JobKey(job_id), JobWhat(job_id), &job));
  return job;
}

StatusOr<std::vector<Job>> Catalog::ListJobs(const JobFilter& filter) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  if (filter.state.has_value() && !ValidState(*filter.state)) {
    return absl::InvalidArgumentError(
        StrCat("unknown job state ", static_cast<int>(*filter.state)));
  }
  ScopedSnapshot snap(db_.get());
  std::vector<Job> out;
  auto keep = [&](Job job) -> bool {
    if (filter.client_id.has_value() && job.client_id != *filter.client_id) {
      return true;
    }
    if (filter.state.has_value() && job.state != *filter.state) return true;
    out.push_back(std::move(job));
    return filter.limit == 0 || out.size() < filter.limit;
  };
  if (filter.state.has_value()) {
    // The state index: only jobs in that state are visited.
    if (filter.after_job_id == UINT64_MAX) return out;
    std::string prefix = JobStatePrefix(*filter.state);
    std::string start = JobStateKey(*filter.state, filter.after_job_id + 1);
    CAIRN_RETURN_IF_ERROR(ScanPrefix(
        db_.get(), snap.get(), prefix, start,
        [&](const std::string& key, std::string_view) -> StatusOr<bool> {
          if (key.size() != prefix.size() + 8) {
            return Damaged(key, "malformed index key");
          }
          uint64_t job_id =
              GetBigEndian64(std::string_view(key).substr(prefix.size()));
          Job job;
          CAIRN_RETURN_IF_ERROR(
              ReadIndexed(db_.get(), snap.get(), key, JobKey(job_id), &job));
          return keep(std::move(job));
        }));
    return out;
  }
  if (filter.after_job_id == UINT64_MAX) return out;
  CAIRN_RETURN_IF_ERROR(ScanPrefix(
      db_.get(), snap.get(), kJobPrefix, JobKey(filter.after_job_id + 1),
      [&](const std::string& key, std::string_view value) -> StatusOr<bool> {
        Job job;
        CAIRN_RETURN_IF_ERROR(DecodeValue(key, value, &job));
        return keep(std::move(job));
      }));
  return out;
}

Status Catalog::StartJob(uint64_t job_id, std::string_view media_agent_id,
                         std::string_view backup_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(Job job, GetJob(job_id));
  if (job.state != JobState::kQueued) {
    return absl::FailedPreconditionError(
        StrCat("job ", job_id, " is ", JobStateName(job.state),
               "; only a queued job can start"));
  }
  if (!media_agent_id.empty()) {
    CAIRN_ASSIGN_OR_RETURN(MediaAgent agent, GetMediaAgent(media_agent_id));
    if (agent.revoked) {
      return absl::FailedPreconditionError(
          StrCat("media agent '", agent.media_agent_id, "' is revoked"));
    }
    job.media_agent_id = agent.media_agent_id;
  }
  if (!backup_id.empty()) job.backup_id = std::string(backup_id);
  Batch batch(*this);
  batch.Delete(JobStateKey(job.state, job_id));
  job.state = JobState::kRunning;
  job.started_us = Now();
  batch.Put(JobKey(job_id), job);
  batch.PutRaw(JobStateKey(job.state, job_id), {});
  return Commit(&batch);
}

Status Catalog::UpdateJobProgress(uint64_t job_id,
                                  const JobProgress& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(Job job, GetJob(job_id));
  if (job.state != JobState::kRunning) {
    return absl::FailedPreconditionError(
        StrCat("job ", job_id, " is ", JobStateName(job.state),
               "; only a running job reports progress"));
  }
  job.progress = progress;
  Batch batch(*this);
  batch.Put(JobKey(job_id), job);
  return Commit(&batch, /*sync=*/false);
}

Status Catalog::FinishJob(uint64_t job_id, JobState state,
                          std::string_view error, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidState(state) || !IsFinal(state)) {
    return absl::InvalidArgumentError(
        StrCat("FinishJob needs a final state (succeeded, failed, cancelled), "
               "got ",
               JobStateName(state)));
  }
  if (state == JobState::kFailed && error.empty()) {
    return absl::InvalidArgumentError(
        StrCat("failing job ", job_id, " needs an error message"));
  }
  CAIRN_ASSIGN_OR_RETURN(Job job, GetJob(job_id));
  if (IsFinal(job.state)) {
    return absl::FailedPreconditionError(StrCat(
        "job ", job_id, " already finished (", JobStateName(job.state), ")"));
  }
  if (state == JobState::kSucceeded) {
    if (job.kind == JobKind::kBackup || job.kind == JobKind::kRestoreBuild) {
      return absl::FailedPreconditionError(
          StrCat(JobKindName(job.kind), " job ", job_id,
                 " succeeds only by committing its image (CommitBackup)"));
    }
    if (job.state != JobState::kRunning) {
      return absl::FailedPreconditionError(
          StrCat("job ", job_id, " is ", JobStateName(job.state),
                 "; only a running job can succeed"));
    }
  }
  Batch batch(*this);
  batch.Delete(JobStateKey(job.state, job_id));
  job.state = state;
  job.finished_us = Now();
  job.error = std::string(error);
  batch.Put(JobKey(job_id), job);
  batch.PutRaw(JobStateKey(job.state, job_id), {});
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

// ---- Users -----------------------------------------------------------------

Status Catalog::PutUser(const User& user, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateUserName(user.name));
  CAIRN_RETURN_IF_ERROR(CheckHumanRole(user.role));
  User existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(
      MaybeReadRecord(db_.get(), UserKey(user.name), &existing, &found));
  User stored = user;
  stored.created_us = found ? existing.created_us : Now();
  Batch batch(*this);
  batch.Put(UserKey(stored.name), stored);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

StatusOr<User> Catalog::GetUser(std::string_view name) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateUserName(name));
  User user;
  CAIRN_RETURN_IF_ERROR(ReadRecord(db_.get(), nullptr, UserKey(name),
                                   StrCat("user '", name, "'"), &user));
  return user;
}

StatusOr<std::vector<User>> Catalog::ListUsers() const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  return ListAll<User>(db_.get(), kUserPrefix);
}

Status Catalog::DeleteUser(std::string_view name, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(GetUser(name).status());
  Batch batch(*this);
  batch.Delete(UserKey(name));
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

// ---- Restore-build cache and boot templates --------------------------------

StatusOr<BackupEntry> Catalog::FindCustomizedImage(
    std::string_view parent_id, std::string_view build_key) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(parent_id));
  const std::string key = BuildCacheKey(parent_id, build_key);
  std::string value;
  rocksdb::Status s = db_->Get(ReadAt(nullptr), key, &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        StrCat("no restore build of '", parent_id, "' for ", build_key));
  }
  CAIRN_RETURN_IF_ERROR(
      FromRocks(s, StrCat("reading catalog key ", DescribeKey(key))));
  BackupEntry image;
  CAIRN_RETURN_IF_ERROR(
      ReadIndexed(db_.get(), nullptr, key, BackupKey(value), &image));
  return image;
}

Status Catalog::CreateTemplate(const BootTemplate& t, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(t.name, "template name"));
  if (t.kernel_version.empty()) {
    return absl::InvalidArgumentError(
        StrCat("template '", t.name, "' has no kernel version"));
  }
  BootTemplate existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(
      MaybeReadRecord(db_.get(), TemplateKey(t.name), &existing, &found));
  if (found) {
    return absl::AlreadyExistsError(
        StrCat("template '", t.name, "' already exists"));
  }
  CAIRN_ASSIGN_OR_RETURN(BackupEntry image, GetBackup(t.image_id));
  if (image.status != BackupStatus::kAvailable) {
    return absl::FailedPreconditionError(StrCat(
        "image '", image.backup_id, "' is ", BackupStatusName(image.status)));
  }
  BootTemplate stored = t;
  stored.created_us = Now();
  Batch batch(*this);
  batch.Put(TemplateKey(stored.name), stored);
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

StatusOr<BootTemplate> Catalog::GetTemplate(std::string_view name) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(name, "template name"));
  BootTemplate t;
  CAIRN_RETURN_IF_ERROR(ReadRecord(db_.get(), nullptr, TemplateKey(name),
                                   StrCat("template '", name, "'"), &t));
  return t;
}

StatusOr<std::vector<BootTemplate>> Catalog::ListTemplates() const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  return ListAll<BootTemplate>(db_.get(), kTemplatePrefix);
}

Status Catalog::DeleteTemplate(std::string_view name, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(GetTemplate(name).status());
  Batch batch(*this);
  batch.Delete(TemplateKey(name));
  CAIRN_RETURN_IF_ERROR(StageAuditIf(&batch, audit));
  return Commit(&batch);
}

// ---- Hardware profiles -----------------------------------------------------

namespace {
bool IsSha256Hex(std::string_view s) {
  return s.size() == 64 &&
         s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}
}  // namespace

StatusOr<bool> Catalog::RecordClientProfile(std::string_view client_id,
                                            const ProfileBlob& blob,
                                            int64_t reported_us) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  if (!IsSha256Hex(blob.sha256_hex)) {
    return absl::InvalidArgumentError(
        "a profile is keyed by 64 lower-case hex digits of SHA-256");
  }
  if (blob.profile_zstd.empty()) {
    return absl::InvalidArgumentError("the profile is empty");
  }
  CAIRN_ASSIGN_OR_RETURN(Client client, GetClient(client_id));
  CAIRN_ASSIGN_OR_RETURN(std::vector<ProfileHistoryEntry> history,
                         ListClientProfiles(client.client_id));
  if (!history.empty() && history.back().profile_sha256 == blob.sha256_hex) {
    return false;  // unchanged since the last report
  }
  if (!history.empty() && reported_us <= history.back().reported_us) {
    reported_us = history.back().reported_us + 1;  // keep the order strict
  }
  Batch batch(*this);
  ProfileBlob existing;
  bool found = false;
  CAIRN_RETURN_IF_ERROR(MaybeReadRecord(
      db_.get(), ProfileBlobKey(blob.sha256_hex), &existing, &found));
  if (!found) {
    ProfileBlob stored = blob;
    stored.first_seen_us = reported_us;
    batch.Put(ProfileBlobKey(blob.sha256_hex), stored);
  }
  ProfileHistoryEntry entry{client.client_id, reported_us, blob.sha256_hex};
  batch.Put(ProfileHistoryKey(client.client_id, reported_us), entry);
  CAIRN_RETURN_IF_ERROR(Commit(&batch));
  return true;
}

StatusOr<ProfileBlob> Catalog::GetProfileBlob(
    std::string_view sha256_hex) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  if (!IsSha256Hex(sha256_hex)) {
    return absl::InvalidArgumentError(
        StrCat("'", sha256_hex.substr(0, 80), "' is not a profile id"));
  }
  ProfileBlob blob;
  CAIRN_RETURN_IF_ERROR(ReadRecord(db_.get(), nullptr,
                                   ProfileBlobKey(sha256_hex),
                                   StrCat("profile ", sha256_hex), &blob));
  return blob;
}

StatusOr<std::vector<ProfileHistoryEntry>> Catalog::ListClientProfiles(
    std::string_view client_id) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(client_id, "client id"));
  return ListAll<ProfileHistoryEntry>(db_.get(),
                                      ProfileHistoryPrefix(client_id));
}

// ---- Audit log -------------------------------------------------------------

StatusOr<AuditEntry> Catalog::AppendAudit(const AuditEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  Batch batch(*this);
  AuditEntry stored;
  CAIRN_RETURN_IF_ERROR(StageAudit(&batch, entry, &stored));
  CAIRN_RETURN_IF_ERROR(Commit(&batch));
  return stored;
}

StatusOr<std::vector<AuditEntry>> Catalog::ListAudit(uint64_t after_seq,
                                                     size_t limit) const {
  CAIRN_RETURN_IF_ERROR(CheckOpen());
  std::vector<AuditEntry> out;
  if (after_seq == UINT64_MAX) return out;
  CAIRN_RETURN_IF_ERROR(ScanPrefix(
      db_.get(), nullptr, kAuditPrefix, AuditKey(after_seq + 1),
      [&](const std::string& key, std::string_view value) -> StatusOr<bool> {
        AuditEntry entry;
        CAIRN_RETURN_IF_ERROR(DecodeValue(key, value, &entry));
        out.push_back(std::move(entry));
        return limit == 0 || out.size() < limit;
      }));
  return out;
}

}  // namespace cairn
