// The file catalogue of a backup (DESIGN.md section 6; issue 7): what the
// media agent records about every file of every file system in an image, so
// that listing and searching need no mount and a file's content can be read
// from the image's chunks through its extents.
//
// Three parts:
//   CatalogueFileSystem  walks one read-only mounted file system and returns
//                        its v1::FileSystemCatalogue (proto/cairn/v1/
//                        browse.proto). Mounting is not done here (the
//                        browse mount code does it).
//   CatalogueIndex       the query side over a v1::FileCatalogue: lookup,
//                        listing, fnmatch search, subtrees.
//   ReadFileFromExtents  a file's bytes straight from an ExportedImage.
// The stored form of a catalogue is media_agent/catalogue_store.h
// (docs/formats/file-catalogue.md).
#ifndef CAIRN_MEDIA_AGENT_FILE_CATALOGUE_H_
#define CAIRN_MEDIA_AGENT_FILE_CATALOGUE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cairn/v1/browse.pb.h"
#include "common/status.h"
#include "media_agent/exported_image.h"

namespace cairn {

// Bounds of one file system's walk. A walk that reaches one stops (or, for
// the depth, does not descend) and returns what it has with `truncated` set.
struct CatalogueLimits {
  // Entries recorded per file system, the root included.
  uint64_t max_entries = 20'000'000;
  // Deepest entry recorded: the root is depth 0, "/etc" depth 1,
  // "/etc/ssh" depth 2. A directory at max_depth is recorded but not read.
  int max_depth = 4096;
  // Wall-clock budget of the walk (steady clock).
  std::chrono::milliseconds deadline{30 * 60 * 1000};
};

// Where a file system lies in the image, as the partition table (or blkid)
// describes it. Copied into the catalogue; `offset` also turns the file
// system's block addresses into image offsets.
struct FileSystemLocation {
  uint32_t partition = 0;  // 1-based; 0: a file system on the whole disk
  uint64_t offset = 0;     // bytes from the start of the image
  uint64_t size = 0;       // bytes; 0 (unknown): no extent is recorded
  std::string fs_type, label, uuid;
};

// Catalogues the file system mounted (read-only) at `mount_dir`.
//
// The walk is depth-first pre-order with each directory's children sorted by
// their name bytes, and records every entry's path, type, size, mode
// (07777), owner, times, inode, link count, device number, a symlink's
// target as stored, and for regular files the FIEMAP extents translated to
// image offsets (image_offset = where.offset + physical). It never follows a
// symbolic link and never leaves the mount of `mount_dir`: an entry on
// another mount (something mounted below `mount_dir`) is skipped and named
// in `error`.
//
// `extents_complete` is set only when every extent is a plain, aligned,
// allocated extent of a file system whose FIEMAP addresses are byte offsets
// on its block device (ext2/3/4, XFS without the realtime device, FAT,
// exFAT, NTFS, F2FS, HFS+, JFS - not btrfs, whose addresses are logical),
// and every extent lies inside [0, where.size). Extents are clipped to the
// file size (the last block's slack is not listed); holes are not listed.
// A file whose FIEMAP fails, or that has more than 1,048,576 extents, has
// no extents and extents_complete=false; that is not an error.
//
// Per-entry errors (a damaged directory that fails with EIO or EBADMSG, an
// unreadable symlink, a path longer than 4096 bytes) are collected into
// `error` (bounded to a few KiB, then counted) and the walk goes on.
// Reaching a limit returns the partial catalogue with truncated=true and an
// `error` naming the partition and the limit.
//
// Returns an error only if `mount_dir` cannot be opened as a directory or
// `limits` are invalid (InvalidArgument). Uses at most about 70 file
// descriptors whatever the depth. Thread-safe (no shared state).
StatusOr<v1::FileSystemCatalogue> CatalogueFileSystem(
    const std::string& mount_dir, const FileSystemLocation& where,
    const CatalogueLimits& limits = {});

// "/", "/etc/", "etc//ssh/./sshd_config" -> "/", "/etc",
// "/etc/ssh/sshd_config": absolute, no empty or "." components, no trailing
// '/'. The empty path is "/". InvalidArgument for a ".." component (the
// message says "path traversal"), a NUL byte, or more than 4096 bytes.
// Names are bytes: anything else (non-UTF-8 included) is kept as is.
StatusOr<std::string> NormalizeBrowsePath(std::string_view path);

// Per-entry error messages of one file system's walk, bounded to 8 KiB of
// text (the rest are counted), for FileSystemCatalogue.error. Used by the
// host walk and the sandboxed one (media_agent/sandbox_disk.h) alike.
// Not thread-safe.
class CatalogueErrors {
 public:
  static constexpr size_t kMaxBytes = 8192;
  void Add(std::string message);
  // "<prefix><limit>; <errors>; and N more errors", or "" with neither a
  // limit nor an error.
  std::string Finish(const std::string& prefix, const std::string& limit) const;

 private:
  std::string text_;
  uint64_t count_ = 0;
  uint64_t dropped_ = 0;
};

// The query side of a FileCatalogue. Every path argument is normalized with
// NormalizeBrowsePath first (so "etc//ssh/" works and ".." is refused).
//
// Construction builds, per file system, a hash map path -> entry and a
// children index, so Lookup is O(1) and List O(children). Memory: about
// 40 bytes per entry on top of the catalogue.
//
// Thread safety: immutable after Create; every method may run concurrently.
// Pointers returned stay valid as long as the CatalogueIndex.
class CatalogueIndex {
 public:
  // Takes ownership of `catalogue`. InvalidArgument if it is malformed: two
  // file systems with one partition number, or within a file system a path
  // that is not normalized, a duplicate path, or an entry whose parent
  // directory is not in the catalogue (a truncated walk never produces one:
  // a directory precedes its children).
  static StatusOr<std::unique_ptr<CatalogueIndex>> Create(
      v1::FileCatalogue catalogue);

  CatalogueIndex(const CatalogueIndex&) = delete;
  CatalogueIndex& operator=(const CatalogueIndex&) = delete;

  const v1::FileCatalogue& catalogue() const { return catalogue_; }

  // The file system `partition` names; unset: the only file system, or else
  // the one that has "/etc" as a directory (the root file system).
  // NotFound if `partition` is not catalogued, or the catalogue has no file
  // systems; InvalidArgument if unset and ambiguous (the message lists the
  // partitions).
  StatusOr<const v1::FileSystemCatalogue*> FileSystem(
      std::optional<uint32_t> partition) const;

  // The entry at `path`. NotFound naming the path and the partition.
  // InvalidArgument if `fs` is not one of this index's file systems.
  StatusOr<const v1::FileEntry*> Lookup(const v1::FileSystemCatalogue& fs,
                                        std::string_view path) const;

  // The children of directory `dir`, sorted by name bytes. NotFound as
  // Lookup; FailedPrecondition if `dir` is not a directory.
  StatusOr<std::vector<const v1::FileEntry*>> List(
      const v1::FileSystemCatalogue& fs, std::string_view dir) const;

  // Entries matching the fnmatch(3) `pattern` (FNM_PERIOD off, so "*" matches
  // ".profile"): a pattern without '/' is matched against each entry's last
  // path component, a pattern with '/' against its whole path (FNM_PATHNAME:
  // '*' does not match '/'; the root "/" has no name and matches only
  // path patterns). In `partition` only, or every file system, in catalogue
  // order (pre-order for a catalogue the walk made). At most `limit` matches;
  // `*truncated` (if not null) tells whether more matched.
  std::vector<std::pair<uint32_t, const v1::FileEntry*>> Find(
      std::string_view pattern, std::optional<uint32_t> partition, size_t limit,
      bool* truncated) const;

  // Directory `dir` and every entry under it, in pre-order with children
  // sorted by name. Empty if `dir` is invalid or not in `fs`; just the entry
  // if it is not a directory.
  std::vector<const v1::FileEntry*> Subtree(const v1::FileSystemCatalogue& fs,
                                            std::string_view dir) const;

 private:
  struct FsIndex {
    const v1::FileSystemCatalogue* fs = nullptr;
    // Path bytes (views into the owned catalogue) -> entry index.
    absl::flat_hash_map<std::string_view, uint32_t, std::hash<std::string_view>>
        by_path;
    // Children of entry i: child_index[child_begin[i] .. child_begin[i+1]),
    // sorted by name bytes.
    std::vector<uint32_t> child_begin;
    std::vector<uint32_t> child_index;
  };

  explicit CatalogueIndex(v1::FileCatalogue catalogue)
      : catalogue_(std::move(catalogue)) {}
  Status Build();
  StatusOr<const FsIndex*> IndexOf(const v1::FileSystemCatalogue& fs) const;
  // The index of the entry at normalized `path`; NotFound naming it.
  StatusOr<uint32_t> EntryIndex(const FsIndex& index,
                                std::string_view path) const;

  const v1::FileCatalogue catalogue_;
  std::vector<FsIndex> indexes_;  // parallel to catalogue_.filesystems()
};

// Reads [offset, offset + length) of the regular file `entry` (length 0: to
// the end; the range is clipped to the file's size) from `image`, in file
// order: extent bytes through ExportedImage::Read, holes and anything past
// the last extent as zeros. `sink` receives the bytes in pieces of at most
// `block` bytes; its first error stops the read and is returned.
//
// FailedPrecondition if `entry` is not a regular file or its extents are not
// complete; OutOfRange if `offset` is past the end of the file;
// InvalidArgument if `block` is 0; DataLoss naming the file if the extents
// are out of order, overlap, run past the file's size or lie outside the
// image; the image's own errors (DataLoss for a damaged chunk) as they come.
// `image` is not owned; thread-safe as ExportedImage is.
Status ReadFileFromExtents(ExportedImage* image, const v1::FileEntry& entry,
                           uint64_t offset, uint64_t length,
                           const std::function<Status(std::string_view)>& sink,
                           size_t block = 1 << 20);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_FILE_CATALOGUE_H_
