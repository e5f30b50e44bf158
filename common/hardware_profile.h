// HardwareProfile files and renderings (DESIGN.md section 5;
// docs/formats/hardware-profile.md).
//
// A profile file is either
//   - binary: the 8-byte magic "CAIRNHP1", the payload length (u64 little
//     endian), the CRC32C of the payload (u32 little endian), then the
//     serialized v1::HardwareProfile. The header makes truncation and
//     damage detectable, which bare protobuf is not (a cut at a field
//     boundary still parses); or
//   - JSON: the protobuf JSON mapping of v1::HardwareProfile (field names as
//     in profile.proto), as written by `cairn-profile collect --json`.
// ParseHardwareProfile accepts both (JSON when the first non-blank byte is
// '{').
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_HARDWARE_PROFILE_H_
#define CAIRN_COMMON_HARDWARE_PROFILE_H_

#include <string>
#include <string_view>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"

namespace cairn {

inline constexpr uint32_t kHardwareProfileFormatVersion = 1;

// The binary file form (header + payload).
std::string EncodeHardwareProfileFile(const v1::HardwareProfile& profile);

// Parses the binary or JSON form. `name` (a path) is named in errors.
// DataLoss for a truncated or damaged file; InvalidArgument for something
// that is not a profile or has an unsupported format_version.
StatusOr<v1::HardwareProfile> ParseHardwareProfile(std::string_view bytes,
                                                   std::string_view name);

// The wire and catalog form (agent.proto ProfileReport, admin.proto
// ProfileInfo): a zstd frame of the serialized HardwareProfile and its
// size. Largest accepted serialized size:
inline constexpr uint64_t kMaxSerializedProfileBytes = 64u << 20;
// Compresses `profile`; sets `*raw_size` to its serialized size.
StatusOr<std::string> CompressHardwareProfile(
    const v1::HardwareProfile& profile, uint64_t* raw_size);
// Decompresses and parses; `what` names it in errors. InvalidArgument if
// `raw_size` is 0 or above the limit, the frame does not decompress to
// exactly `raw_size` bytes, or the bytes are not a HardwareProfile. With
// `serialized`, also returns the serialized bytes (for hashing).
StatusOr<v1::HardwareProfile> DecompressHardwareProfile(
    std::string_view profile_zstd, uint64_t raw_size, std::string_view what,
    std::string* serialized = nullptr);

// Reads and parses the file at `path` (at most 256 MiB).
StatusOr<v1::HardwareProfile> ReadHardwareProfileFile(const std::string& path);

// Writes `contents` to `path` atomically (temporary file + rename).
Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Protobuf JSON mapping, pretty-printed. Without `include_module_indices`
// the (large) ModuleIndexFiles of each kernel are left out and their sizes
// given as "module_index_bytes"; such JSON cannot be used as a diff source.
StatusOr<std::string> HardwareProfileToJson(const v1::HardwareProfile& profile,
                                            bool include_module_indices);

// Human-readable summary, one section per topic (see the format doc).
std::string RenderHardwareProfileText(const v1::HardwareProfile& profile);

// Display names: "bios"/"uefi", "ata"/"virtio-blk"/..., "enabled"/...
std::string_view FirmwareModeName(v1::FirmwareMode mode);
std::string_view DiskBusName(v1::DiskBus bus);
std::string_view SecureBootName(v1::SecureBootState state);

}  // namespace cairn

#endif  // CAIRN_COMMON_HARDWARE_PROFILE_H_
