// CatalogueStore: the file catalogues of a repository's backups (issue 7),
// one file per backup, stored with the backup in the repository directory:
//   <repo_root>/catalogues/<backup id>.cfc   (docs/formats/file-catalogue.md)
//
// A catalogue is zstd-compressed and, when a DataKey is given, encrypted with
// AES-256-GCM under a sub-key of the data key (the media agent gets the key
// of an encrypted backup only inside a browse ticket, so a catalogue - which
// names every file - is never stored in clear for an encrypted policy). A
// trailing CRC32C lets anyone detect damage without the key.
//
// Save is crash-safe: the file is written to <repo_root>/tmp/ (emptied when
// the repository is opened), fsynced, renamed into catalogues/ and the
// directory fsynced (WriteFileAtomically), so a crash leaves the previous
// catalogue or the complete new one, never a partial file.
//
// Errors: InvalidArgument for a malformed backup id; NotFound when a backup
// has no catalogue; DataLoss naming the file for any damage (bad checksum,
// bad header, failed authentication, bad compression or protobuf, a file
// that belongs to another backup); FailedPrecondition for a missing or wrong
// key; ResourceExhausted for a catalogue protobuf cannot serialize (2 GiB).
//
// Thread safety: thread-safe (every call is independent file I/O; two Saves
// of one backup race to a complete file, the last rename wins).
#ifndef CAIRN_MEDIA_AGENT_CATALOGUE_STORE_H_
#define CAIRN_MEDIA_AGENT_CATALOGUE_STORE_H_

#include <string>
#include <vector>

#include "cairn/v1/browse.pb.h"
#include "common/data_key.h"
#include "common/env.h"
#include "common/status.h"

namespace cairn {

class CatalogueStore {
 public:
  // `repo_root` is a repository directory (its tmp/ must exist; catalogues/
  // is created on the first Save). `env` is not owned.
  explicit CatalogueStore(std::string repo_root, Env* env = Env::Default());

  // Stores `catalogue` as the catalogue of catalogue.backup_id(), replacing
  // any previous one. Encrypted iff `key` is not null (not owned).
  Status Save(const v1::FileCatalogue& catalogue, const DataKey* key);

  // Reads and checks the catalogue of `backup_id`. `key` must be the key it
  // was saved with (null for an unencrypted one): FailedPrecondition if it
  // is missing, superfluous or another key (compared by fingerprint).
  StatusOr<v1::FileCatalogue> Load(const std::string& backup_id,
                                   const DataKey* key) const;

  StatusOr<bool> Exists(const std::string& backup_id) const;
  // Removes a catalogue durably. NotFound if there is none.
  Status Delete(const std::string& backup_id);
  // Backup ids that have a catalogue, sorted.
  StatusOr<std::vector<std::string>> List() const;

  // <repo_root>/catalogues/<backup_id>.cfc; InvalidArgument for a malformed
  // id.
  StatusOr<std::string> Path(const std::string& backup_id) const;

 private:
  const std::string root_;
  const std::string dir_;
  const std::string tmp_dir_;
  Env* const env_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_CATALOGUE_STORE_H_
