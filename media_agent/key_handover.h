// Key handover: moving a data key's 32-byte secret from one Cairn process to
// another (the media agent to the nbdkit plugin) without it ever appearing on
// a command line, in the environment or in a file others can read.
//
// The secret travels in the key-file text form (docs/formats/keyfile.md: 64
// hex digits and a newline), either
//   - through a pipe: the parent writes it into a pipe before starting the
//     child and passes only the read end's descriptor number (key-fd=N), or
//   - through a key file that must be a regular file owned by the reading
//     user (or root) with no group or other permission bits (key-file=PATH).
// Readers wipe their intermediate buffers; callers should pass the returned
// secret to DataKey::FromSecret and then WipeSecret() it.
//
// Thread safety: every function is independent; no shared state.
#ifndef CAIRN_MEDIA_AGENT_KEY_HANDOVER_H_
#define CAIRN_MEDIA_AGENT_KEY_HANDOVER_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

// Overwrites the string's bytes with zeros (not optimised away), then clears
// it. Safe on an empty string.
void WipeSecret(std::string* s);

// Decodes the key-file text form (64 hex digits, optional surrounding
// whitespace) into the 32-byte secret. `origin` names the source in errors;
// the key bytes never appear in an error message.
StatusOr<std::string> ParseKeyText(std::string_view text,
                                   std::string_view origin);

// Reads a key from an inherited descriptor until end of file, then closes
// it. InvalidArgument for stdin/stdout/stderr (0-2), for a descriptor that is
// not open (EBADF), for more than 1 KiB of data or malformed text.
// REQUIRES: the writer closes its end after writing (a pipe) or the
// descriptor is a file.
StatusOr<std::string> ReadKeySecretFromFd(int fd);

// Reads a key file without following a symlink. FailedPrecondition unless it
// is a regular file owned by the effective user (or by root) with mode bits
// 077 clear; NotFound if absent. The check is made on the opened descriptor
// (no race between check and read).
StatusOr<std::string> ReadKeySecretFromFile(const std::string& path);

// Creates a pipe holding `secret` in key-file text form and returns its read
// end (close-on-exec set; the write end is already closed). The key fits in
// the pipe buffer, so this never blocks. REQUIRES: secret.size() == 32.
StatusOr<int> MakeKeyPipe(std::string_view secret);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_KEY_HANDOVER_H_
